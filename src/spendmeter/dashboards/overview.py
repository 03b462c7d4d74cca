"""LLM spend overview: where the money goes (feature, user, model, provider) and how healthy the data is."""

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
    piechart_panel,
    stat_panel,
    table_panel,
    textbox_variable,
    timeseries_panel,
)
from spendmeter.dashboards._panels import query as Q
from spendmeter.dashboards._promql import increase

UID = "spendmeter-overview"

# Attributed series carry all five labels; the latency histogram has no `user`, unpriced only provider+model.
F = 'provider=~"$provider", model=~"$model", feature=~"$feature", agent=~"$agent", user=~"$user"'
F_NO_USER = 'provider=~"$provider", model=~"$model", feature=~"$feature", agent=~"$agent"'
F_PM = 'provider=~"$provider", model=~"$model"'

COST = f"llm_cost_usd_total{{{F}}}"
SENT = f'llm_requests_total{{{F}, status!="blocked"}}'  # blocked calls never reached the provider
BLOCKED = f'llm_requests_total{{{F}, status="blocked"}}'
FAILED = f'llm_requests_total{{{F}, status="error"}}'
UNPRICED = f"llm_unpriced_requests_total{{{F_PM}}}"

RANGE = "$__range"
# A tag exported as a label (SPENDMETER_LABEL_TAGS=team): its name is the user's choice, so it is a variable.
TAG_NOTE = (
    "Spend by one of your attribute() tags, e.g. attribute(team=\"payments\"). A tag is a Prometheus label "
    "only when spendmeter exports it (SPENDMETER_LABEL_TAGS=team or init(label_tags=[\"team\"])); set the "
    "'Tag label' box above to its name. Calls without the tag show as unknown; without the label at all, "
    "one unnamed series holds the whole spend. The ledger has every tag: /api/costs/by-tag?name=team."
)


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
        label_variable("provider", "Provider", "label_values(llm_requests_total, provider)"),
        label_variable("model", "Model", 'label_values(llm_requests_total{provider=~"$provider"}, model)'),
        label_variable("feature", "Feature", "label_values(llm_requests_total, feature)"),
        label_variable("agent", "Agent", "label_values(llm_requests_total, agent)"),
        label_variable("user", "User", "label_values(llm_requests_total, user)"),
        textbox_variable("tag", "Tag label", "team", "The attribute() tag exported as a label "
                         "(SPENDMETER_LABEL_TAGS) that the 'Spend by tag' panel groups by."),
    ]
    spent = increase(COST, RANGE)
    panels = [
        stat_panel("Spend today", [Q(f"sum({spent})", "today", instant=True)], width=4, height=5, unit=USD,
                   time_from="now/d",
                   description="Priced spend since midnight (dashboard time zone) for the selected filters."),
        stat_panel("Spend month to date", [Q(f"sum({spent})", "month to date", instant=True)], width=4, height=5,
                   unit=USD, time_from="now/M"),
        bargauge_panel(
            "Global budget utilization",
            [Q('max by (budget, period) (llm_budget_utilization_ratio{scope="global"})', "{{budget}} ({{period}})",
               instant=True)],
            width=8, height=5, unit="percentunit", min_value=0, max_value=1.2, steps=WARN,
            description="Spent / limit of every global budget in its current period, from spendmeter's "
            "budget gauges (not filtered by the variables above). Orange from 80 %, red at the limit.",
        ),
        stat_panel("Cost per request",
                   [Q(f"sum({spent})\n/\nsum({increase(SENT, RANGE)})", "per request", instant=True)],
                   width=4, height=5, unit=USD, decimals=5,
                   description="Priced spend divided by requests sent to a provider (blocked calls excluded)."),
        stat_panel("Cache hit ratio", [Q(cache_hit_ratio(), "cache hit ratio", instant=True)], width=4, height=5,
                   unit="percentunit", decimals=1,
                   description="Share of prompt tokens read from the provider's prompt cache: cache_read / "
                   "(input + cache_read). A token share, not a dollar saving: cache-read prices differ per model."),
        timeseries_panel("Spend per day by feature", [Q(f"sum by (feature) ({increase(COST, '1d')})", "{{feature}}")],
                         unit=USD, stacked=True, bars=True, interval="1d", time_from="now-14d",
                         description="One bar per day: spend in the 24 h ending at the bar. Today so far is in "
                         "'Spend today'; the live rate is on the right."),
        timeseries_panel("Spend rate by feature (USD/hour)",
                         [Q(f"sum by (feature) (rate({COST}[$__rate_interval])) * 3600", "{{feature}}")],
                         unit=USD, stacked=True),
        bargauge_panel("Top users", [Q(f"topk(10, sum by (user) ({spent}))", "{{user}}", instant=True)],
                       width=8, height=9, unit=USD, basic=True,
                       description="The ten users with the highest spend in the selected time range."),
        piechart_panel("Spend by provider and model",
                       [Q(f"sum by (provider, model) ({spent})", "{{provider}} / {{model}}", instant=True)],
                       width=8, height=9, unit=USD),
        table_panel(
            "Global budgets: spent and limit",
            [Q('max by (budget, period) (llm_budget_spent_usd{scope="global"})', instant=True, table_format=True),
             Q('max by (budget, period) (llm_budget_limit_usd{scope="global"})', instant=True, table_format=True)],
            width=8, height=9, unit=USD, transformations=merge_table({"Value #A": "Spent", "Value #B": "Limit"}),
            description="Current period of each global budget, from spendmeter's budget gauges.",
        ),
        timeseries_panel(
            "Tokens by class (tokens/s)",
            [Q(f"sum by (type) (rate(llm_tokens_total{{{F}}}[$__rate_interval]))", "{{type}}"),
             Q(f"sum(rate(llm_reasoning_tokens_total{{{F}}}[$__rate_interval])) or vector(0)",
               "reasoning (part of output)")],
            stacked=True, overrides=[("reasoning (part of output)", {"custom.stacking": {"mode": "none"}})],
            description="Billed token classes are disjoint and stack to the billed total. Reasoning "
            "tokens are already inside output, so they are drawn as a separate line, not stacked.",
        ),
        timeseries_panel("Cache hit ratio by model", [Q(cache_hit_ratio("model"), "{{model}}")],
                         unit="percentunit", min_value=0, max_value=1,
                         description="cache_read / (input + cache_read) per model: how much of the prompt the "
                         "provider served from its cache. Not a dollar figure."),
        timeseries_panel("Cost per request by model",
                         [Q(f"sum by (model) (rate({COST}[$__rate_interval]))\n/\n"
                            f"sum by (model) (rate({SENT}[$__rate_interval]))", "{{model}}")],
                         width=8, unit=USD, decimals=5),
        timeseries_panel("Requests by status (req/s)",
                         [Q(f"sum by (status) (rate(llm_requests_total{{{F}}}[$__rate_interval]))", "{{status}}")],
                         width=8, unit="reqps", stacked=True,
                         description="ok, error (the provider or the network failed) and blocked (a budget refused "
                         "the call before anything was sent)."),
        timeseries_panel("Where token counts came from (req/s)",
                         [Q(f"sum by (usage) (rate(llm_requests_total{{{F}}}[$__rate_interval]))", "{{usage}}")],
                         width=8, unit="reqps", stacked=True,
                         description="reported: the provider sent usage. estimated: spendmeter counted tokens "
                         "itself. missing: no usage at all (e.g. an OpenAI stream without include_usage, or a "
                         "stream closed early): such calls are under-counted."),
        stat_panel(
            "Blocked and failed calls",
            [Q(f"sum({increase(BLOCKED, RANGE)}) or vector(0)", "blocked", instant=True),
             Q(f"sum({increase(FAILED, RANGE)}) or vector(0)", "failed", instant=True)],
            width=6, height=5, decimals=0, steps=((None, "green"), (1, "orange")),
        ),
        stat_panel("Unpriced calls",
                   [Q(f"sum({increase(UNPRICED, RANGE)}) or vector(0)", "unpriced", instant=True)],
                   width=6, height=5, decimals=0, steps=((None, "green"), (1, "red")),
                   description="Calls to a model spendmeter has no price for. They are counted here and never "
                   "as $0; add a price override to fix them."),
        stat_panel("spendmeter internal errors",
                   [Q(f"sum({increase('spendmeter_internal_errors_total', RANGE)}) or vector(0)", "errors",
                      instant=True)],
                   width=6, height=5, decimals=0, steps=((None, "green"), (1, "orange")),
                   description="Errors inside spendmeter itself (caught, never raised to the application)."),
        stat_panel("Firing alerts",
                   [Q('count(ALERTS{alertstate="firing", alertname=~"LLM.*|Spendmeter.*"}) or vector(0)', "firing",
                      instant=True)],
                   width=6, height=5, decimals=0, steps=((None, "green"), (1, "red")),
                   description="spendmeter alert rules firing in Prometheus now; details on the Budgets dashboard."),
        timeseries_panel("Latency p50 / p95", [Q(latency(0.5), "p50"), Q(latency(0.95), "p95")], unit="s",
                         description="Whole SDK call, retries and stream consumption included."),
        timeseries_panel("Latency p95 by model", [Q(latency(0.95, "model"), "{{model}}")], unit="s"),
        bargauge_panel("Spend by tag ($tag)", [Q(f"sort_desc(sum by ($tag) ({spent}))", "{{$tag}}", instant=True)],
                       width=12, height=8, unit=USD, basic=True, description=TAG_NOTE),
        timeseries_panel("Spend rate by tag ($tag, USD/hour)",
                         [Q(f"sum by ($tag) (rate({COST}[$__rate_interval])) * 3600", "{{$tag}}")],
                         width=12, height=8, unit=USD, stacked=True, description=TAG_NOTE),
    ]
    return dashboard(
        uid=UID,
        title="LLM spend overview",
        description="Who and what is spending LLM money, from spendmeter's Prometheus metrics.",
        variables=variables,
        panels=panels,
    )
