"""Every metric spendmeter exports: name, type, unit, labels, buckets and help text, in one table.

The Prometheus sink, the OTLP metrics sink and the budget gauges all build their instruments from here, so
a name is spelled once. Names follow Prometheus' rules (units in the name; counters get `_total` on
exposition). `measurements(call)` is the one projection of a finished call onto the call metrics, used by
every exporter: which token classes, which cost, and the rule that a blocked call has no duration.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from spendmeter.call import Call, Cost, Unpriced, Usage

Kind = Literal["counter", "histogram", "gauge"]

SERIES = ("provider", "model", "user", "feature", "agent")  # the labels every call series carries
DURATION_LABELS = ("provider", "model", "feature", "agent")  # no user: times buckets, it would explode
BUDGET_KEY_LABELS = ("budget", "scope", "key", "period")
TOKEN_TYPES = ("input", "cache_read", "cache_write", "output")
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


@dataclass(frozen=True, slots=True)
class Metric:
    name: str  # without `_total`: prometheus_client and OTLP-to-Prometheus both add it to counters
    kind: Kind
    unit: str  # UCUM for OTLP; `{...}` annotations are dropped by the Prometheus translation
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] | None = None


# -- one series set per call ---------------------------------------------------------------------------------
COST = Metric("llm_cost_usd", "counter", "{USD}", SERIES, "USD spent on LLM calls, at list price with overrides")
TOKENS = Metric(
    "llm_tokens",
    "counter",
    "{token}",
    (*SERIES, "type"),
    "Billed tokens by class (input, cache_read, cache_write, output)",
)
REASONING = Metric("llm_reasoning_tokens", "counter", "{token}", SERIES, "Reasoning tokens (a subset of output tokens)")
REQUESTS = Metric(
    "llm_requests", "counter", "{request}", (*SERIES, "status", "usage"), "LLM calls by outcome and usage source"
)
DURATION = Metric(
    "llm_request_duration_seconds",
    "histogram",
    "s",
    DURATION_LABELS,
    "Wall time of LLM calls, streams until their end",
    DURATION_BUCKETS,
)
UNPRICED = Metric(
    "llm_unpriced_requests",
    "counter",
    "{request}",
    ("provider", "model"),
    "Calls whose model has no known price (cost not counted)",
)
TOOL_USES = Metric(
    "llm_tool_uses",
    "counter",
    "{use}",
    (*SERIES, "tool"),
    "Billed server-side tool uses (web_search, web_fetch, file_search, ...); their fees are in llm_cost_usd",
)
CALL_METRICS = (COST, TOKENS, REASONING, REQUESTS, DURATION, UNPRICED, TOOL_USES)
# The call metrics that carry attribution, and so the tag labels a user asks for (SPENDMETER_LABEL_TAGS).
TAGGED = (COST, TOKENS, REASONING, REQUESTS, DURATION, TOOL_USES)


def with_tags(metric: Metric, tags: tuple[str, ...]) -> Metric:
    """`metric` as exported when `init(label_tags=...)` names tags: their labels follow the attribution labels
    (SERIES, or DURATION_LABELS), before the metric's own (`type`, `status`, ...). Unchanged without tags."""
    if not tags or metric not in TAGGED:
        return metric
    base = SERIES if metric.labels[: len(SERIES)] == SERIES else DURATION_LABELS
    n = len(base)
    return replace(metric, labels=(*metric.labels[:n], *tags, *metric.labels[n:]))


# -- spendmeter's own health -----------------------------------------------------------------------------------
INTERNAL_ERRORS = Metric(
    "spendmeter_internal_errors", "counter", "{error}", ("kind",), "Failures inside spendmeter, contained"
)
FOLDED = Metric(
    "spendmeter_label_values_folded",
    "counter",
    "{observation}",
    ("label",),
    "Label observations folded into 'other' by the cardinality cap",
)
HEALTH_METRICS = (INTERNAL_ERRORS, FOLDED)

# -- budgets (gauges set from the spend store) -------------------------------------------------------------------
BUDGET_LIMIT = Metric("llm_budget_limit_usd", "gauge", "{USD}", BUDGET_KEY_LABELS, "Declared budget limit in USD.")
BUDGET_SPENT = Metric(
    "llm_budget_spent_usd", "gauge", "{USD}", BUDGET_KEY_LABELS, "Spend in the current budget period in USD."
)
BUDGET_UTILIZATION = Metric(
    "llm_budget_utilization_ratio", "gauge", "1", BUDGET_KEY_LABELS, "Spend divided by the limit in the current period."
)
BUDGET_WARN = Metric(
    "llm_budget_warn_ratio",
    "gauge",
    "1",
    ("budget", "level"),
    "Declared warn levels as ratios of the limit (label level = the ratio, e.g. 0.8).",
)
BUDGET_PERIOD_END = Metric(
    "llm_budget_period_end_timestamp_seconds",
    "gauge",
    "s",
    ("budget", "period"),
    "When the current budget period ends (Unix time).",
)
BUDGET_OVER_LIMIT = Metric(
    "llm_budget_users_over_limit",
    "gauge",
    "{key}",
    ("budget",),
    "Keys (users, features, ...) at or over the limit this period.",
)
BUDGET_BLIND = Metric(
    "llm_budget_blind",
    "gauge",
    "1",
    ("budget", "on_store_error"),
    "1 while the budget's spend store is unreachable: decisions use the local view (open) or block (closed).",
)
BUDGET_METRICS = (BUDGET_LIMIT, BUDGET_SPENT, BUDGET_UTILIZATION, BUDGET_WARN, BUDGET_PERIOD_END, BUDGET_OVER_LIMIT,
                  BUDGET_BLIND)  # fmt: skip

# The GenAI semantic-convention histograms (OTLP only; their names and advice live in telemetry.semconv).
ALL_PROMETHEUS = (*CALL_METRICS, *HEALTH_METRICS, *BUDGET_METRICS)


@dataclass(frozen=True, slots=True)
class Share:
    """The part of a call that goes to one model's series: all of it, unless steps ran at other models."""

    values: tuple[str, ...]  # the series label values (provider, model, user, feature, agent)
    cost_usd: float | None
    tokens: tuple[tuple[str, int], ...]
    reasoning: int
    folded: tuple[str, ...] = ()  # labels folded into `other` for this share's own model value


@dataclass(frozen=True, slots=True)
class Measurements:
    """A finished call projected onto the call metrics."""

    cost_usd: float | None  # None: unpriced or no usage (never $0 for an unknown price)
    unpriced: bool
    tokens: tuple[tuple[str, int], ...]  # (type, count), non-zero only
    reasoning: int
    status: str
    usage: str
    duration_s: float | None  # None for a blocked call: nothing was sent, there is no duration
    # Cost, tokens and reasoning per model series: one share for a one-model call (the call's own labels);
    # a call whose steps ran at several models (Anthropic `usage.iterations`) adds each other model's share
    # to that model's series. Requests, duration and tool uses stay on the call's own series.
    shares: tuple[Share, ...] = ()
    tool_uses: tuple[tuple[str, int], ...] = ()  # (tool, uses)


def _counts(usage: Usage) -> tuple[tuple[str, int], ...]:
    counts = (usage.input, usage.cache_read, usage.cache_write, usage.output)
    return tuple((kind, n) for kind, n in zip(TOKEN_TYPES, counts, strict=True) if n)


def measurements(call: Call) -> Measurements:
    usage = call.usage
    cost = call.cost
    cost_usd = float(cost.total) if isinstance(cost, Cost) else None  # Decimal until here, the export edge
    tokens = _counts(usage)
    return Measurements(
        cost_usd=cost_usd,
        unpriced=isinstance(cost, Unpriced),
        tokens=tokens,
        reasoning=usage.reasoning,
        status=call.status,
        usage=usage.source,
        duration_s=None if call.status == "blocked" else call.duration_s,
        shares=_shares(call, cost_usd, tokens),
        tool_uses=tuple((t, n) for t, n in call.tool_uses if n > 0),
    )


def _shares(call: Call, cost_usd: float | None, tokens: tuple[tuple[str, int], ...]) -> tuple[Share, ...]:
    own = call.labels.values if call.labels is not None else ()
    others = call.model_labels or {}
    if not call.steps or not others:
        return (Share(own, cost_usd, tokens, call.usage.reasoning),)
    by_model: dict[str, Usage] = {}
    for step in call.steps:
        u = by_model.setdefault(step.model, Usage(source="reported"))
        u.input += step.usage.input
        u.cache_read += step.usage.cache_read
        u.cache_write_5m += step.usage.cache_write_5m
        u.cache_write_1h += step.usage.cache_write_1h
        u.output += step.usage.output
        u.reasoning += step.usage.reasoning
    costs = dict(call.cost.parts) if isinstance(call.cost, Cost) else {}
    shares = []
    for model, u in by_model.items():
        labels = others.get(model)
        part = costs.get(model)
        share_cost = float(part.total) if part is not None else None
        if labels is None:  # the call's own model
            shares.append(Share(own, share_cost if costs else cost_usd, _counts(u), u.reasoning))
        else:
            shares.append(Share(labels.values, share_cost, _counts(u), u.reasoning, labels.folded))
    return tuple(shares)
