"""Budgets: utilization, spent against limit, a linear forecast to the end of the period, and alert state."""

from __future__ import annotations

from typing import Any

from spendmeter.dashboards._panels import (
    USD,
    WARN,
    bargauge_panel,
    dashboard,
    datasource_variable,
    label_variable,
    merge_table,
    organize,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from spendmeter.dashboards._panels import query as Q

UID = "spendmeter-budgets"

B = 'budget=~"$budget"'
KEYS = "budget, scope, key, period"
SPENT = f"max by ({KEYS}) (llm_budget_spent_usd{{{B}}})"
LIMIT = f"max by ({KEYS}) (llm_budget_limit_usd{{{B}}})"
UTILIZATION = f"max by ({KEYS}) (llm_budget_utilization_ratio{{{B}}})"
PERIOD_END = f"max by (budget, period) (llm_budget_period_end_timestamp_seconds{{{B}}})"
SECONDS_LEFT = f"clamp_min({PERIOD_END} - time(), 0)"
# The spend rate comes from the budget's own spent gauge, so it covers exactly the budget's scope. It drops
# to 0 at a period reset; clamp_min keeps that from forecasting negative spend.
SPEND_RATE = f"clamp_min(max by ({KEYS}) (deriv(llm_budget_spent_usd{{{B}}}[1h])), 0)"
FORECAST = f"{SPENT}\n+\n{SPEND_RATE}\n* on (budget, period) group_left ()\n{SECONDS_LEFT}"
FORECAST_NOTE = (
    "Linear forecast: spent so far + the spend rate of the last hour (deriv of llm_budget_spent_usd) "
    "× the time left until llm_budget_period_end_timestamp_seconds."
)
BUDGET_ALERTS = (
    "LLMBudgetWarning",
    "LLMBudgetExhausted",
    "LLMBudgetBurnRateForecast",
    "LLMUserDailyLimitExceeded",
)
ALL_ALERTS = 'alertname=~"LLM.*|Spendmeter.*"'
LEGEND = "{{budget}} {{scope}}={{key}} ({{period}})"


def build() -> dict[str, Any]:
    variables = [
        datasource_variable(),
        label_variable("budget", "Budget", "label_values(llm_budget_limit_usd, budget)"),
    ]
    panels = [
        bargauge_panel("Budget utilization", [Q(UTILIZATION, LEGEND, instant=True)], width=12, height=8,
                       unit="percentunit", min_value=0, max_value=1.2, steps=WARN,
                       description="Spent / limit in the current period. Per-user series appear only for users "
                       "at or above the budget's lowest warn level."),
        stat_panel(
            "Budget alerts firing",
            [Q(f'count(ALERTS{{alertname="{name}", alertstate="firing", {B}}}) or vector(0)', name, instant=True)
             for name in BUDGET_ALERTS],
            width=12, height=8, decimals=0, steps=((None, "green"), (1, "red")), with_names=True,
            description="Number of firing alert instances per budget rule, from Prometheus' ALERTS series.",
        ),
        table_panel(
            "Spent, limit and forecast",
            [Q(expr, instant=True, table_format=True) for expr in (SPENT, LIMIT, UTILIZATION, FORECAST)],
            width=24, height=8, unit=USD,
            transformations=merge_table({"Value #A": "Spent", "Value #B": "Limit", "Value #C": "Utilization",
                                         "Value #D": "Forecast at period end"}),
            overrides=[("Utilization", {"unit": "percentunit", "decimals": 1})],
            description=FORECAST_NOTE,
        ),
        timeseries_panel("Spent and limit", [Q(SPENT, "spent: " + LEGEND), Q(LIMIT, "limit: " + LEGEND)], unit=USD),
        timeseries_panel("Forecast at period end / limit", [Q(f"({FORECAST})\n/ on ({KEYS})\n{LIMIT}", LEGEND)],
                         unit="percentunit", min_value=0, steps=WARN, legend_bottom=True,
                         description=FORECAST_NOTE + " Above 100 % the budget is on course to run out before the "
                         "end."),
        bargauge_panel("Time left in the period", [Q(SECONDS_LEFT, "{{budget}} ({{period}})", instant=True)],
                       width=8, height=7, unit="dtdurations", basic=True),
        stat_panel("Users over their limit",
                   [Q(f"max by (budget) (llm_budget_users_over_limit{{{B}}})", "{{budget}}", instant=True)],
                   width=8, height=7, decimals=0, steps=((None, "green"), (1, "orange")), with_names=True,
                   description="Per-user budgets: how many users have spent their whole limit this period."),
        table_panel("Warn levels",
                    [Q(f"max by (budget, level) (llm_budget_warn_ratio{{{B}}})", instant=True, table_format=True)],
                    width=8, height=7, unit="percentunit", transformations=[organize({"Value": "Warn at"})]),
        stat_panel(
            "All spendmeter alerts",
            [Q(f'count(ALERTS{{{ALL_ALERTS}, alertstate="firing"}}) or vector(0)', "firing", instant=True),
             Q(f'count(ALERTS{{{ALL_ALERTS}, alertstate="pending"}}) or vector(0)', "pending", instant=True)],
            width=24, height=4, decimals=0, steps=((None, "green"), (1, "orange")), with_names=True,
            description="Every spendmeter rule (budgets, spend spikes, unpriced models, streams without "
            "usage, target down). Pending = the condition holds but its 'for' time has not passed.",
        ),
    ]
    return dashboard(
        uid=UID,
        title="LLM budgets",
        description="Each budget's utilization, spent against limit, a forecast to the end of the period, "
        "and alert state.",
        variables=variables,
        panels=panels,
        time_from="now-6h",
    )
