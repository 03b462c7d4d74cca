"""Prometheus metrics for each finished call, built once from the metric contract (telemetry.contract).

Label values come computed and bounded on the call (`call.labels`, from the pipeline's label policy); this
sink only binds prometheus_client children and adds. Children are bound once per label tuple and cached, so
the hot path skips `labels()` and its lock. `_created` series are not exported
(`disable_created_metrics()` is called at init).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from spendmeter.call import Call
from spendmeter.runtime import finisher
from spendmeter.telemetry import contract as c
from spendmeter.telemetry.labels import Labels

_TYPES: dict[str, type] = {"counter": Counter, "histogram": Histogram, "gauge": Gauge}


def build(metric: c.Metric, registry: CollectorRegistry, **extra: Any) -> Any:
    """A prometheus_client metric for one contract row (bad names fail here, at init)."""
    kwargs: dict[str, Any] = {"registry": registry, **extra}
    if metric.buckets is not None:
        kwargs["buckets"] = metric.buckets
    return _TYPES[metric.kind](metric.name, metric.help, metric.labels, **kwargs)


class _Bound:
    """The children of one (provider, model, user, feature, agent) tuple, each bound on first use: a series
    appears only once it has something to say (an unpriced call makes no $0 cost series)."""

    __slots__ = ("cost", "duration", "reasoning", "requests", "tokens", "tools")

    def __init__(self) -> None:
        self.cost: Any = None
        self.reasoning: Any = None
        self.duration: Any = None
        self.tokens: dict[str, Any] = {}
        self.requests: dict[tuple[str, str], Any] = {}
        self.tools: dict[str, Any] = {}


class _FlushFirst:
    """Registered before the call metrics: a collection of the registry (a scrape, `generate_latest`,
    `get_sample_value`) first finishes the calls still queued for the background finisher."""

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        finisher.flush()
        return []


class PrometheusSink:
    kind = "prometheus"

    def __init__(self, registry: CollectorRegistry | None = None, tags: tuple[str, ...] = ()) -> None:
        reg = registry if registry is not None else REGISTRY
        self.registry = reg
        self._flush_first = _FlushFirst()
        reg.register(self._flush_first)
        self.tags = tuple(tags)  # tag labels after the attribution labels (contract.with_tags)
        self.cost = build(c.with_tags(c.COST, self.tags), reg)
        self.tokens = build(c.with_tags(c.TOKENS, self.tags), reg)
        self.reasoning = build(c.with_tags(c.REASONING, self.tags), reg)
        self.requests = build(c.with_tags(c.REQUESTS, self.tags), reg)
        self.duration = build(c.with_tags(c.DURATION, self.tags), reg)
        self.unpriced = build(c.UNPRICED, reg)
        self.tool_uses = build(c.with_tags(c.TOOL_USES, self.tags), reg)
        self.internal_errors = build(c.INTERNAL_ERRORS, reg)
        self.folded = build(c.FOLDED, reg)
        self._bound: dict[tuple[str, ...], _Bound] = {}

    def on_call(self, call: Call) -> None:
        labels: Labels = call.labels
        values = labels.values
        bound = self._bound.get(values)
        if bound is None:
            bound = self._bound[values] = _Bound()
        for label in labels.folded:
            self.folded.labels(label).inc()
        m = c.measurements(call)
        if m.unpriced:
            self.unpriced.labels(values[0], values[1]).inc()
        for share in m.shares:  # one per model series: the call's own, and any model a step ran at
            self._share(share, bound if share.values == values else self._bound_of(share.values))
        for tool, uses in m.tool_uses:
            child = bound.tools.get(tool)
            if child is None:
                child = bound.tools[tool] = self.tool_uses.labels(*values, tool)
            child.inc(uses)
        outcome = (m.status, m.usage)
        requests = bound.requests.get(outcome)
        if requests is None:
            requests = bound.requests[outcome] = self.requests.labels(*values, *outcome)
        requests.inc()
        if m.duration_s is not None:
            if bound.duration is None:
                bound.duration = self.duration.labels(values[0], values[1], *values[3:])  # all but the user
            bound.duration.observe(m.duration_s)

    def _bound_of(self, values: tuple[str, ...]) -> _Bound:
        bound = self._bound.get(values)
        if bound is None:
            bound = self._bound[values] = _Bound()
        return bound

    def _share(self, share: c.Share, bound: _Bound) -> None:
        for label in share.folded:
            self.folded.labels(label).inc()
        if share.cost_usd is not None:
            if bound.cost is None:
                bound.cost = self.cost.labels(*share.values)
            bound.cost.inc(share.cost_usd)
        for kind, count in share.tokens:
            child = bound.tokens.get(kind)
            if child is None:
                child = bound.tokens[kind] = self.tokens.labels(*share.values, kind)
            child.inc(count)
        if share.reasoning:
            if bound.reasoning is None:
                bound.reasoning = self.reasoning.labels(*share.values)
            bound.reasoning.inc(share.reasoning)

    def unregister(self) -> None:
        """Take this sink's metrics out of its registry (a re-init that exports other tag labels)."""
        for metric in (self.cost, self.tokens, self.reasoning, self.requests, self.duration, self.unpriced,
                       self.tool_uses, self.internal_errors, self.folded, self._flush_first):
            self.registry.unregister(metric)

    def count_internal_error(self, kind: str, n: int = 1) -> None:
        self.internal_errors.labels(kind).inc(n)
