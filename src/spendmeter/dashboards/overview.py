"""LLM spend overview: where the money goes (feature, user, model, provider) and how healthy the data is."""

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

UID = "spendmeter-overview"

# Attributed series carry all five labels; the latency histogram has no `user`, unpriced only provider+model.
F = 'provider=~"$provider", model=~"$model", feature=~"$feature", agent=~"$agent", user=~"$user"'
F_NO_USER = 'provider=~"$provider", model=~"$model", feature=~"$feature", agent=~"$agent"'
F_PM = 'provider=~"$provider", model=~"$model"'

COST = f"llm_cost_usd_total{{{F}}}"
SENT = f'llm_requests_total{{{F}, status!="blocked"}}'  # blocked calls never reached the provider

WARN_THRESHOLDS: list[tuple[float | None, str]] = [(None, "green"), (0.8, "orange"), (1.0, "red")]


def cache_hit_ratio(by: str = "") -> str:
    """cache_read / (input + cache_read). `or … * 0` makes a model without cache reads read 0, not vanish."""
    grouping = f" by ({by})" if by else ""
    read = f'rate(llm_tokens_total{{{F}, type="cache_read"}}[$__rate_interval])'
    fresh = f'rate(llm_tokens_total{{{F}, type="input"}}[$__rate_interval])'
    prompt = f'rate(llm_tokens_total{{{F}, type=~"input|cache_read"}}[$__rate_interval])'
    return f"sum{grouping} ({read} or {fresh} * 0)\n/\nsum{grouping} ({prompt})"


def latency(quantile: float, by: str = "") -> str:
    rate = f"rate(llm_request_duration_seconds_bucket{{{F_NO_USER}}}[$__rate_interval])"
    return f"histogram_quantile({quantile}, sum by ({by + ', ' if by else ''}le) ({rate}))"


def build() -> dict[str, Any]:
    variables = [
        datasource_variable(),
        Variable("provider", "Provider", "label_values(llm_requests_total, provider)"),
        Variable("model", "Model", 'label_values(llm_requests_total{provider=~"$provider"}, model)'),
        Variable("feature", "Feature", "label_values(llm_requests_total, feature)"),
        Variable("agent", "Agent", "label_values(llm_requests_total, agent)"),
        Variable("user", "User", "label_values(llm_requests_total, user)"),
    ]
    usd = "currencyUSD"
    panels = [
        Panel(
            "Spend today", "stat", [Target(f"sum(increase({COST}[$__range]))", "today", instant=True)],
            width=4, height=5, unit=usd, time_from="now/d",
            description="Priced spend since midnight (dashboard time zone) for the selected filters.",
        ),
        Panel(
            "Spend month to date", "stat",
            [Target(f"sum(increase({COST}[$__range]))", "month to date", instant=True)],
            width=4, height=5, unit=usd, time_from="now/M",
        ),
        Panel(
            "Global budget utilization", "bargauge",
            [Target('max by (budget, period) (llm_budget_utilization_ratio{scope="global"})',
                    "{{budget}} ({{period}})", instant=True)],
            width=8, height=5, unit="percentunit", min=0, max=1.2, thresholds=WARN_THRESHOLDS,
            description="Spent / limit of every global budget in its current period, from spendmeter's "
            "budget gauges (not filtered by the variables above). Orange from 80 %, red at the limit.",
        ),
        Panel(
            "Cost per request", "stat",
            [Target(f"sum(increase({COST}[$__range]))\n/\nsum(increase({SENT}[$__range]))", "per request",
                    instant=True)],
            width=4, height=5, unit=usd, decimals=5,
            description="Priced spend divided by requests sent to a provider (blocked calls excluded).",
        ),
        Panel(
            "Cache hit ratio", "stat", [Target(cache_hit_ratio(), "cache hit ratio", instant=True)],
            width=4, height=5, unit="percentunit", decimals=1,
            description="Share of prompt tokens read from the provider's prompt cache: cache_read / "
            "(input + cache_read). A token share, not a dollar saving: cache-read prices differ per model.",
        ),
        Panel(
            "Spend per day by feature", "timeseries",
            [Target(f"sum by (feature) (increase({COST}[1d]))", "{{feature}}")],
            unit=usd, stacked=True, bars=True, interval="1d", time_from="now-14d",
            description="One bar per day: spend in the 24 h ending at the bar. Today so far is in "
            "'Spend today'; the live rate is on the right.",
        ),
        Panel(
            "Spend rate by feature (USD/hour)", "timeseries",
            [Target(f"sum by (feature) (rate({COST}[$__rate_interval])) * 3600", "{{feature}}")],
            unit=usd, stacked=True,
        ),
        Panel(
            "Top users", "bargauge",
            [Target(f"topk(10, sum by (user) (increase({COST}[$__range])))", "{{user}}", instant=True)],
            width=8, height=9, unit=usd, options={"displayMode": "basic"},
            description="The ten users with the highest spend in the selected time range.",
        ),
        Panel(
            "Spend by provider and model", "piechart",
            [Target(f"sum by (provider, model) (increase({COST}[$__range]))", "{{provider}} / {{model}}",
                    instant=True)],
            width=8, height=9, unit=usd,
        ),
        Panel(
            "Global budgets: spent and limit", "table",
            [
                Target('max by (budget, period) (llm_budget_spent_usd{scope="global"})', instant=True,
                       table=True),
                Target('max by (budget, period) (llm_budget_limit_usd{scope="global"})', instant=True,
                       table=True),
            ],
            width=8, height=9, unit=usd,
            transformations=merge_table({"Value #A": "Spent", "Value #B": "Limit"}),
            description="Current period of each global budget, from spendmeter's budget gauges.",
        ),
        Panel(
            "Tokens by class (tokens/s)", "timeseries",
            [
                Target(f"sum by (type) (rate(llm_tokens_total{{{F}}}[$__rate_interval]))", "{{type}}"),
                Target(f"sum(rate(llm_reasoning_tokens_total{{{F}}}[$__rate_interval])) or vector(0)",
                       "reasoning (part of output)"),
            ],
            stacked=True,
            overrides=[override("reasoning (part of output)", custom__stacking={"mode": "none"})],
            description="Billed token classes are disjoint and stack to the billed total. Reasoning "
            "tokens are already inside output, so they are drawn as a separate line, not stacked.",
        ),
        Panel(
            "Cache hit ratio by model", "timeseries", [Target(cache_hit_ratio("model"), "{{model}}")],
            unit="percentunit", min=0, max=1,
            description="cache_read / (input + cache_read) per model: how much of the prompt the "
            "provider served from its cache. Not a dollar figure.",
        ),
        Panel(
            "Cost per request by model", "timeseries",
            [Target(f"sum by (model) (rate({COST}[$__rate_interval]))\n/\n"
                    f"sum by (model) (rate({SENT}[$__rate_interval]))", "{{model}}")],
            width=8, unit=usd, decimals=5,
        ),
        Panel(
            "Requests by status (req/s)", "timeseries",
            [Target(f"sum by (status) (rate(llm_requests_total{{{F}}}[$__rate_interval]))", "{{status}}")],
            width=8, unit="reqps", stacked=True,
            description="ok, error (the provider or the network failed) and blocked (a budget refused "
            "the call before anything was sent).",
        ),
        Panel(
            "Where token counts came from (req/s)", "timeseries",
            [Target(f"sum by (usage) (rate(llm_requests_total{{{F}}}[$__rate_interval]))", "{{usage}}")],
            width=8, unit="reqps", stacked=True,
            description="reported: the provider sent usage. estimated: spendmeter counted tokens itself. "
            "missing: no usage at all (e.g. an OpenAI stream without include_usage, or a stream "
            "closed early): such calls are under-counted.",
        ),
        Panel(
            "Blocked and failed calls", "stat",
            [
                Target(f'sum(increase(llm_requests_total{{{F}, status="blocked"}}[$__range])) or vector(0)',
                       "blocked", instant=True),
                Target(f'sum(increase(llm_requests_total{{{F}, status="error"}}[$__range])) or vector(0)',
                       "failed", instant=True),
            ],
            width=6, height=5, decimals=0, thresholds=[(None, "green"), (1, "orange")],
        ),
        Panel(
            "Unpriced calls", "stat",
            [Target(f"sum(increase(llm_unpriced_requests_total{{{F_PM}}}[$__range])) or vector(0)",
                    "unpriced", instant=True)],
            width=6, height=5, decimals=0, thresholds=[(None, "green"), (1, "red")],
            description="Calls to a model spendmeter has no price for. They are counted here and never "
            "as $0; add a price override to fix them.",
        ),
        Panel(
            "spendmeter internal errors", "stat",
            [Target("sum(increase(spendmeter_internal_errors_total[$__range])) or vector(0)", "errors",
                    instant=True)],
            width=6, height=5, decimals=0, thresholds=[(None, "green"), (1, "orange")],
            description="Errors inside spendmeter itself (caught, never raised to the application).",
        ),
        Panel(
            "Firing alerts", "stat",
            [Target('count(ALERTS{alertstate="firing", alertname=~"LLM.*|Spendmeter.*"}) or vector(0)',
                    "firing", instant=True)],
            width=6, height=5, decimals=0, thresholds=[(None, "green"), (1, "red")],
            description="spendmeter alert rules firing in Prometheus now; details on the Budgets dashboard.",
        ),
        Panel(
            "Latency p50 / p95", "timeseries",
            [Target(latency(0.5), "p50"), Target(latency(0.95), "p95")],
            unit="s",
            description="Whole SDK call, retries and stream consumption included.",
        ),
        Panel("Latency p95 by model", "timeseries", [Target(latency(0.95, "model"), "{{model}}")], unit="s"),
    ]
    return dashboard(
        uid=UID,
        title="LLM spend overview",
        description="Who and what is spending LLM money, from spendmeter's Prometheus metrics.",
        variables=variables,
        panels=panels,
    )
