"""Prometheus metrics: every name, type and label tuple is declared at the top of this file.

The names are a public contract (shared/CONVENTIONS.md). Label values are bounded per process: each label
keeps at most `caps[label]` distinct values, later ones fold into `other` (counted in
`spendmeter_label_values_folded_total`), so totals over all labels stay exact while series stay bounded.
`_created` series are not exported (prometheus_client's `disable_created_metrics()` is called at init).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from spendmeter.call import UNKNOWN, Call, Cost, Unpriced

ATTR_LABELS = ("provider", "model", "user", "feature", "agent")
COST = ("llm_cost_usd", "USD spent on LLM calls, at list price with overrides", ATTR_LABELS)
TOKENS = ("llm_tokens", "Billed tokens by class (input, cache_read, cache_write, output)", (*ATTR_LABELS, "type"))
REASONING = ("llm_reasoning_tokens", "Reasoning tokens (a subset of output tokens)", ATTR_LABELS)
REQUESTS = ("llm_requests", "LLM calls by outcome and usage source", (*ATTR_LABELS, "status", "usage"))
DURATION = (
    "llm_request_duration_seconds",
    "Wall time of LLM calls, streams until their end",
    ("provider", "model", "feature", "agent"),
)
UNPRICED = ("llm_unpriced_requests", "Calls whose model has no known price (cost not counted)", ("provider", "model"))
INTERNAL_ERRORS = ("spendmeter_internal_errors", "Failures inside spendmeter, contained", ("kind",))
FOLDED = ("spendmeter_label_values_folded", "Label observations folded into 'other' by the cardinality cap", ("label",))
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
TOKEN_TYPES = ("input", "cache_read", "cache_write", "output")

DEFAULT_CAPS: Mapping[str, int] = {"user": 1000, "feature": 100, "agent": 100, "model": 200, "provider": 20}
OTHER = "other"


class LabelPolicy:
    """Turns raw attribution values into bounded, safe label values."""

    def __init__(
        self, caps: Mapping[str, int] | None = None, max_length: int = 64, hash_key: bytes | None = None
    ) -> None:
        self.caps = {**DEFAULT_CAPS, **(caps or {})}
        self.max_length = max_length
        self.hash_key = hash_key
        self._seen: dict[str, set[str]] = {label: set() for label in self.caps}
        self._lock = threading.Lock()
        self.folded: dict[str, int] = {}

    def value(self, label: str, raw: str | None) -> tuple[str, bool]:
        """(label value, folded?)"""
        if raw is None or raw == "":
            return UNKNOWN, False
        text = raw
        if label == "user" and self.hash_key is not None:
            text = hmac.new(self.hash_key, raw.encode(), hashlib.sha256).hexdigest()[:16]
        if len(text) > self.max_length:
            text = text[: self.max_length]
        seen = self._seen.get(label)
        if seen is None or text in seen:
            return text, False
        with self._lock:
            if text in seen:
                return text, False
            if len(seen) < self.caps[label]:
                seen.add(text)
                return text, False
        return OTHER, True


class MetricsSink:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        policy: LabelPolicy | None = None,
    ) -> None:
        reg = registry if registry is not None else REGISTRY
        self.policy = policy or LabelPolicy()
        self.cost = Counter(*COST, registry=reg)
        self.tokens = Counter(*TOKENS, registry=reg)
        self.reasoning = Counter(*REASONING, registry=reg)
        self.requests = Counter(*REQUESTS, registry=reg)
        self.duration = Histogram(*DURATION, buckets=DURATION_BUCKETS, registry=reg)
        self.unpriced = Counter(*UNPRICED, registry=reg)
        self.internal_errors = Counter(*INTERNAL_ERRORS, registry=reg)
        self.folded = Counter(*FOLDED, registry=reg)
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, values: tuple[str, ...]) -> Any:
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*values)
            self._children[key] = child
        return child

    def _attr_values(self, call: Call) -> tuple[str, str, str, str, str]:
        who = call.attribution
        out = []
        for label, raw in zip(ATTR_LABELS, (call.provider, call.model, who.user, who.feature, who.agent), strict=True):
            value, folded = self.policy.value(label, raw)
            if folded:
                self._child(self.folded, (label,)).inc()
            out.append(value)
        return tuple(out)  # type: ignore[return-value]

    def on_call(self, call: Call) -> None:
        attrs = self._attr_values(call)
        provider, model, _user, feature, agent = attrs
        usage = call.usage
        if isinstance(call.cost, Cost):
            self._child(self.cost, attrs).inc(float(call.cost.total))
        elif isinstance(call.cost, Unpriced):
            self._child(self.unpriced, (provider, model)).inc()
        for kind, count in zip(
            TOKEN_TYPES, (usage.input, usage.cache_read, usage.cache_write, usage.output), strict=True
        ):
            if count:
                self._child(self.tokens, (*attrs, kind)).inc(count)
        if usage.reasoning:
            self._child(self.reasoning, attrs).inc(usage.reasoning)
        self._child(self.requests, (*attrs, call.status, usage.source)).inc()
        if call.status != "blocked":
            self._child(self.duration, (provider, model, feature, agent)).observe(call.duration_s)

    def count_internal_error(self, kind: str) -> None:
        self._child(self.internal_errors, (kind,)).inc()
