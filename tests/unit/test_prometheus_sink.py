"""PrometheusSink with its own registry: exact values per label set, unknown labels, folds counted."""

from __future__ import annotations

from decimal import Decimal

from prometheus_client import CollectorRegistry

from spendmeter.call import Attribution, Call, Cost, Unpriced, Usage
from spendmeter.sinks.prometheus import PrometheusSink
from spendmeter.telemetry.labels import LabelPolicy
from spendmeter.testing.records import labelled


def _call(user="alice", cost=Decimal("0.000186"), status="ok", usage=None, model="gpt-4o-mini"):
    call = Call(
        provider="openai",
        operation="chat",
        request_model=model,
        attribution=Attribution(user=user, feature="support", agent="router"),
        status=status,
    )
    call.usage = usage or Usage(input=176, cache_read=1024, output=100, reasoning=40, source="reported")
    call.cost = Cost(Decimal(0), Decimal(0), Decimal(0), Decimal(0), cost, "test", model) if cost is not None else None
    call.duration_s = 0.3
    return labelled(call)


def test_exact_values_per_label_set():
    reg = CollectorRegistry()
    sink = PrometheusSink(registry=reg)
    sink.on_call(_call())
    sink.on_call(_call())
    labels = {"provider": "openai", "model": "gpt-4o-mini", "user": "alice", "feature": "support", "agent": "router"}
    assert reg.get_sample_value("llm_cost_usd_total", labels) == 2 * 0.000186
    assert reg.get_sample_value("llm_tokens_total", {**labels, "type": "cache_read"}) == 2048
    assert reg.get_sample_value("llm_tokens_total", {**labels, "type": "input"}) == 352
    assert reg.get_sample_value("llm_tokens_total", {**labels, "type": "output"}) == 200
    assert reg.get_sample_value("llm_reasoning_tokens_total", labels) == 80
    assert reg.get_sample_value("llm_requests_total", {**labels, "status": "ok", "usage": "reported"}) == 2
    assert (
        reg.get_sample_value(
            "llm_request_duration_seconds_count",
            {"provider": "openai", "model": "gpt-4o-mini", "feature": "support", "agent": "router"},
        )
        == 2
    )


def test_unset_labels_read_unknown_and_unpriced_is_counted_not_costed():
    reg = CollectorRegistry()
    sink = PrometheusSink(registry=reg)
    call = _call(user=None, cost=None, model="my-model")
    call.cost = Unpriced("unknown model")
    sink.on_call(labelled(call))
    assert reg.get_sample_value("llm_unpriced_requests_total", {"provider": "openai", "model": "my-model"}) == 1
    assert (
        reg.get_sample_value(
            "llm_cost_usd_total",
            {"provider": "openai", "model": "my-model", "user": "unknown", "feature": "support", "agent": "router"},
        )
        is None
    )


def test_user_cap_folds_into_other_with_exact_totals():
    reg = CollectorRegistry()
    sink, policy = PrometheusSink(registry=reg), LabelPolicy({"user": 3})
    for i in range(10):
        sink.on_call(labelled(_call(user=f"user-{i}", cost=Decimal("0.001")), policy))
    users = {s.labels["user"] for m in reg.collect() for s in m.samples if s.name == "llm_cost_usd_total"}
    assert users == {"user-0", "user-1", "user-2", "other"}
    total = sum(s.value for m in reg.collect() for s in m.samples if s.name == "llm_cost_usd_total")
    assert round(total, 9) == 0.01
    assert reg.get_sample_value("spendmeter_label_values_folded_total", {"label": "user"}) == 7
