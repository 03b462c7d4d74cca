"""User drill-down: one user's spend by feature, agent and model, against their daily limit."""

from __future__ import annotations

from typing import Any

from spendmeter.dashboards._panels import (
    USD,
    WARN,
    bargauge_panel,
    dashboard,
    datasource_variable,
    label_variable,
    organize,
    sort_by,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from spendmeter.dashboards._panels import query as Q
from spendmeter.dashboards._promql import increase

UID = "spendmeter-user"

COST = 'llm_cost_usd_total{user=~"$user"}'

# Per-user budget series are exported only for users at or above the lowest warn level (to keep cardinality
# bounded), so the declared limit is read from whichever users are exported: it is the same for all of them.
DECLARED_LIMIT = 'max by (budget) (llm_budget_limit_usd{scope="user"})'
LIMIT_NOTE = (
    "Per-user budget series exist only for users at or above the budget's lowest warn level, so the "
    "declared limit shown here is max by (budget)(llm_budget_limit_usd{scope=\"user\"}) over the users "
    "that are exported; it is the same for every user of that budget. No data means no user has reached "
    "a warn level yet."
)


def _rate_by(label: str) -> object:
    return timeseries_panel(
        f"Spend rate by {label} (USD/hour)",
        [Q(f"sum by ({label}) (rate({COST}[$__rate_interval])) * 3600", f"{{{{{label}}}}}")],
        width=8, unit=USD, stacked=True,
    )


def build() -> dict[str, Any]:
    variables = [
        datasource_variable(),
        label_variable("user", "User", "label_values(llm_cost_usd_total, user)", multi=False, include_all=False),
    ]
    spent = increase(COST, "$__range")
    panels = [
        stat_panel("Spend today", [Q(f"sum({spent})", "today", instant=True)], width=6, height=5, unit=USD,
                   time_from="now/d"),
        stat_panel("Spend in the selected range", [Q(f"sum({spent})", "range", instant=True)], width=6, height=5,
                   unit=USD),
        stat_panel("Declared daily limit", [Q(DECLARED_LIMIT, "{{budget}}", instant=True)], width=6, height=5,
                   unit=USD, description=LIMIT_NOTE),
        bargauge_panel(
            "Budget utilization",
            [Q('max by (budget, period) (llm_budget_utilization_ratio{scope="user", key=~"$user"})',
               "{{budget}} ({{period}})", instant=True)],
            width=6, height=5, unit="percentunit", min_value=0, max_value=1.2, steps=WARN,
            description="This user's spent / limit in the current budget period. No data means the user "
            "is below the budget's lowest warn level (the series is exported only from there on).",
        ),
        timeseries_panel(
            "Spend against the daily limit",
            [Q(f"sum({increase(COST, '1d')})", "spent, trailing 24 h"),
             Q('max by (budget) (llm_budget_spent_usd{scope="user", key=~"$user"})', "{{budget}}: spent this period"),
             Q(DECLARED_LIMIT, "{{budget}}: limit")],
            width=24, unit=USD,
            description="Trailing 24 h spend from the cost counter, the budget's own spent gauge for the "
            "current period (shown once the user reaches a warn level) and the declared limit. " + LIMIT_NOTE,
        ),
        _rate_by("feature"),
        _rate_by("agent"),
        _rate_by("model"),
        table_panel(
            "Spend by feature, agent and model",
            [Q(f"sum by (feature, agent, model) ({spent})", instant=True, table_format=True)],
            width=12, height=9, unit=USD, transformations=[organize({"Value": "Spend"}), sort_by("Spend")],
        ),
        timeseries_panel("Tokens by class (tokens/s)",
                         [Q('sum by (type) (rate(llm_tokens_total{user=~"$user"}[$__rate_interval]))', "{{type}}")],
                         width=6, height=9, stacked=True),
        timeseries_panel("Requests by status (req/s)",
                         [Q('sum by (status) (rate(llm_requests_total{user=~"$user"}[$__rate_interval]))',
                            "{{status}}")],
                         width=6, height=9, unit="reqps", stacked=True,
                         description="blocked: a budget refused the call before it was sent."),
    ]
    return dashboard(
        uid=UID,
        title="LLM spend: user drill-down",
        description="One user's LLM spend by feature, agent and model, against their daily limit.",
        variables=variables,
        panels=panels,
        time_from="now-6h",
    )
