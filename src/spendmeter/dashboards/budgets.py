"""Budgets: utilization, spent against limit, a linear forecast to the end of the period, and alert state."""

from __future__ import annotations

from typing import Any

from spendmeter.dashboards._model import (
    Panel,
    Target,
    Variable,
    dashboard,
    datasource_variable,
    merge_table,
    override,
)

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
WARN_THRESHOLDS: list[tuple[float | None, str]] = [(None, "green"), (0.8, "orange"), (1.0, "red")]


def build() -> dict[str, Any]:
    variables = [
        datasource_variable(),
        Variable("budget", "Budget", "label_values(llm_budget_limit_usd, budget)"),
    ]
    panels = [
        Panel(
            "Budget utilization", "bargauge", [Target(UTILIZATION, LEGEND, instant=True)],
            width=12, height=8, unit="percentunit", min=0, max=1.2, thresholds=WARN_THRESHOLDS,
            description="Spent / limit in the current period. Per-user series appear only for users at "
            "or above the budget's lowest warn level.",
        ),
        Panel(
            "Budget alerts firing", "stat",
            [
                Target(f'count(ALERTS{{alertname="{name}", alertstate="firing", {B}}}) or vector(0)', name,
                       instant=True)
                for name in BUDGET_ALERTS
            ],
            width=12, height=8, decimals=0, thresholds=[(None, "green"), (1, "red")],
            options={"textMode": "value_and_name"},
            description="Number of firing alert instances per budget rule, from Prometheus' ALERTS series.",
        ),
        Panel(
            "Spent, limit and forecast", "table",
            [Target(q, instant=True, table=True) for q in (SPENT, LIMIT, UTILIZATION, FORECAST)],
            width=24, height=8, unit="currencyUSD",
            transformations=merge_table(
                {"Value #A": "Spent", "Value #B": "Limit", "Value #C": "Utilization",
                 "Value #D": "Forecast at period end"}
            ),
            overrides=[override("Utilization", unit="percentunit", decimals=1)],
            description=FORECAST_NOTE,
        ),
        Panel(
            "Spent and limit", "timeseries",
            [Target(SPENT, "spent: " + LEGEND), Target(LIMIT, "limit: " + LEGEND)],
            unit="currencyUSD",
        ),
        Panel(
            "Forecast at period end / limit", "timeseries",
            [Target(f"({FORECAST})\n/ on ({KEYS})\n{LIMIT}", LEGEND)],
            unit="percentunit", min=0, thresholds=WARN_THRESHOLDS,
            options={"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull"]}},
            description=FORECAST_NOTE + " Above 100 % the budget is on course to run out before the end.",
        ),
        Panel(
            "Time left in the period", "bargauge",
            [Target(SECONDS_LEFT, "{{budget}} ({{period}})", instant=True)],
            width=8, height=7, unit="dtdurations", options={"displayMode": "basic"},
        ),
        Panel(
            "Users over their limit", "stat",
            [Target(f"max by (budget) (llm_budget_users_over_limit{{{B}}})", "{{budget}}", instant=True)],
            width=8, height=7, decimals=0, thresholds=[(None, "green"), (1, "orange")],
            options={"textMode": "value_and_name"},
            description="Per-user budgets: how many users have spent their whole limit this period.",
        ),
        Panel(
            "Warn levels", "table",
            [Target(f"max by (budget, level) (llm_budget_warn_ratio{{{B}}})", instant=True, table=True)],
            width=8, height=7, unit="percentunit",
            transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True},
                                                            "renameByName": {"Value": "Warn at"}}}],
        ),
        Panel(
            "All spendmeter alerts", "stat",
            [
                Target(f'count(ALERTS{{{ALL_ALERTS}, alertstate="firing"}}) or vector(0)', "firing",
                       instant=True),
                Target(f'count(ALERTS{{{ALL_ALERTS}, alertstate="pending"}}) or vector(0)', "pending",
                       instant=True),
            ],
            width=24, height=4, decimals=0, thresholds=[(None, "green"), (1, "orange")],
            options={"textMode": "value_and_name"},
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
