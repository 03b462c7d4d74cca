"""User drill-down: one user's spend by feature, agent and model, against their daily limit."""

from __future__ import annotations

from typing import Any

from spendmeter.dashboards._model import Panel, Target, Variable, dashboard, datasource_variable

UID = "spendmeter-user"

COST = 'llm_cost_usd_total{user=~"$user"}'
USD = "currencyUSD"

# Per-user budget series are exported only for users at or above the lowest warn level (to keep cardinality
# bounded), so the declared limit is read from whichever users are exported: it is the same for all of them.
DECLARED_LIMIT = 'max by (budget) (llm_budget_limit_usd{scope="user"})'
LIMIT_NOTE = (
    "Per-user budget series exist only for users at or above the budget's lowest warn level, so the "
    "declared limit shown here is max by (budget)(llm_budget_limit_usd{scope=\"user\"}) over the users "
    "that are exported; it is the same for every user of that budget. No data means no user has reached "
    "a warn level yet."
)


def _rate_by(label: str) -> Panel:
    return Panel(
        f"Spend rate by {label} (USD/hour)", "timeseries",
        [Target(f"sum by ({label}) (rate({COST}[$__rate_interval])) * 3600", f"{{{{{label}}}}}")],
        width=8, unit=USD, stacked=True,
    )


def build() -> dict[str, Any]:
    variables = [
        datasource_variable(),
        Variable("user", "User", "label_values(llm_cost_usd_total, user)", multi=False, include_all=False),
    ]
    panels = [
        Panel(
            "Spend today", "stat", [Target(f"sum(increase({COST}[$__range]))", "today", instant=True)],
            width=6, height=5, unit=USD, time_from="now/d",
        ),
        Panel(
            "Spend in the selected range", "stat",
            [Target(f"sum(increase({COST}[$__range]))", "range", instant=True)],
            width=6, height=5, unit=USD,
        ),
        Panel(
            "Declared daily limit", "stat", [Target(DECLARED_LIMIT, "{{budget}}", instant=True)],
            width=6, height=5, unit=USD, description=LIMIT_NOTE,
        ),
        Panel(
            "Budget utilization", "bargauge",
            [Target('max by (budget, period) (llm_budget_utilization_ratio{scope="user", key=~"$user"})',
                    "{{budget}} ({{period}})", instant=True)],
            width=6, height=5, unit="percentunit", min=0, max=1.2,
            thresholds=[(None, "green"), (0.8, "orange"), (1.0, "red")],
            description="This user's spent / limit in the current budget period. No data means the user "
            "is below the budget's lowest warn level (the series is exported only from there on).",
        ),
        Panel(
            "Spend against the daily limit", "timeseries",
            [
                Target(f"sum(increase({COST}[1d]))", "spent, trailing 24 h"),
                Target('max by (budget) (llm_budget_spent_usd{scope="user", key=~"$user"})',
                       "{{budget}}: spent this period"),
                Target(DECLARED_LIMIT, "{{budget}}: limit"),
            ],
            width=24, unit=USD,
            description="Trailing 24 h spend from the cost counter, the budget's own spent gauge for the "
            "current period (shown once the user reaches a warn level) and the declared limit. "
            + LIMIT_NOTE,
        ),
        _rate_by("feature"),
        _rate_by("agent"),
        _rate_by("model"),
        Panel(
            "Spend by feature, agent and model", "table",
            [Target(f"sum by (feature, agent, model) (increase({COST}[$__range]))", instant=True,
                    table=True)],
            width=12, height=9, unit=USD,
            transformations=[
                {"id": "organize", "options": {"excludeByName": {"Time": True},
                                               "renameByName": {"Value": "Spend"}}},
                {"id": "sortBy", "options": {"sort": [{"field": "Spend", "desc": True}]}},
            ],
        ),
        Panel(
            "Tokens by class (tokens/s)", "timeseries",
            [Target('sum by (type) (rate(llm_tokens_total{user=~"$user"}[$__rate_interval]))', "{{type}}")],
            width=6, height=9, stacked=True,
        ),
        Panel(
            "Requests by status (req/s)", "timeseries",
            [Target('sum by (status) (rate(llm_requests_total{user=~"$user"}[$__rate_interval]))',
                    "{{status}}")],
            width=6, height=9, unit="reqps", stacked=True,
            description="blocked: a budget refused the call before it was sent.",
        ),
    ]
    return dashboard(
        uid=UID,
        title="LLM spend: user drill-down",
        description="One user's LLM spend by feature, agent and model, against their daily limit.",
        variables=variables,
        panels=panels,
        time_from="now-6h",
    )
