"""The metric projection of multi-model calls and tool uses: each model's share goes to its own series, one
request per call, tool uses counted per tool; the same on /metrics, OTLP and the span."""

from __future__ import annotations

from decimal import Decimal

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client import CollectorRegistry

from spendmeter.call import Attribution, Call, Cost, Step, Usage
from spendmeter.sinks.otel_metrics import OtelMetricsSink
from spendmeter.sinks.prometheus import PrometheusSink
from spendmeter.sinks.spans import SpanSink
from spendmeter.telemetry import contract
from spendmeter.telemetry.labels import LabelPolicy
from spendmeter.testing import FlushingSpanExporter

Z = Decimal(0)
SONNET, OPUS = "claude-sonnet-4-5", "claude-opus-4-5"


def _cost(total: str, tools: str = "0") -> Cost:
    return Cost(Z, Z, Z, Z, Decimal(total), "genai-prices", "x", tools=Decimal(tools))


def _call(policy: LabelPolicy | None = None) -> Call:
    policy = policy or LabelPolicy()
    call = Call(provider="anthropic", operation="messages", request_model=SONNET, response_model=SONNET,
                attribution=Attribution(user="alice"), duration_s=1.0)
    call.steps = (Step(SONNET, Usage(input=100, output=10, source="reported")),
                  Step(OPUS, Usage(input=50, cache_read=5, output=2, source="reported"), "advisor_message"))
    call.usage = Usage(input=150, cache_read=5, output=12, source="reported")
    call.tool_uses = (("web_search", 3),)
    sonnet, opus = _cost("0.0015", "0.03"), _cost("0.0003")
    call.cost = Cost(Z, Z, Z, Z, Decimal("0.0318"), "genai-prices", "x", tools=Decimal("0.03"),
                     parts=((SONNET, sonnet), (OPUS, opus)))
    call.identity = policy.identity(call.attribution)
    call.labels = policy.labels(call)
    call.model_labels = {OPUS: policy.labels(call, model=OPUS)}
    return call


def test_shares_split_per_model():
    m = contract.measurements(_call())
    assert [(s.values[1], s.cost_usd, s.tokens) for s in m.shares] == [
        (SONNET, pytest.approx(0.0015), (("input", 100), ("output", 10))),
        (OPUS, pytest.approx(0.0003), (("input", 50), ("cache_read", 5), ("output", 2))),
    ]
    assert m.cost_usd == pytest.approx(0.0318) and m.tool_uses == (("web_search", 3),)


def test_prometheus_series_per_model_and_tool():
    registry = CollectorRegistry()
    PrometheusSink(registry).on_call(_call())
    who = {"provider": "anthropic", "user": "alice", "feature": "unknown", "agent": "unknown"}
    get = registry.get_sample_value
    assert get("llm_cost_usd_total", {**who, "model": OPUS}) == pytest.approx(0.0003)
    assert get("llm_cost_usd_total", {**who, "model": SONNET}) == pytest.approx(0.0015)
    assert get("llm_tokens_total", {**who, "model": OPUS, "type": "cache_read"}) == 5
    assert get("llm_tool_uses_total", {**who, "model": SONNET, "tool": "web_search"}) == 3
    assert get("llm_requests_total", {**who, "model": SONNET, "status": "ok", "usage": "reported"}) == 1
    assert get("llm_requests_total", {**who, "model": OPUS, "status": "ok", "usage": "reported"}) is None


def test_a_capped_step_model_folds_into_other():
    policy = LabelPolicy({"model": 1})
    registry = CollectorRegistry()
    PrometheusSink(registry).on_call(_call(policy))
    assert registry.get_sample_value("llm_cost_usd_total", {"provider": "anthropic", "model": "other",
                                                            "user": "alice", "feature": "unknown",
                                                            "agent": "unknown"}) == pytest.approx(0.0003)
    assert registry.get_sample_value("spendmeter_label_values_folded_total", {"label": "model"}) == 1


def test_otlp_series_per_model_and_tool():
    reader = InMemoryMetricReader()
    OtelMetricsSink(meter_provider=MeterProvider(metric_readers=[reader])).on_call(_call())
    points = {m.name: list(m.data.data_points) for rm in reader.get_metrics_data().resource_metrics
              for sm in rm.scope_metrics for m in sm.metrics}
    costs = {p.attributes["model"]: p.value for p in points["llm_cost_usd"]}
    assert costs == {SONNET: pytest.approx(0.0015), OPUS: pytest.approx(0.0003)}
    assert [(p.attributes["tool"], p.value) for p in points["llm_tool_uses"]] == [("web_search", 3)]


def test_span_carries_tools_steps_and_the_list_price():
    exporter = FlushingSpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    call = _call()
    call.cost = Cost(Z, Z, Z, Z, Decimal("0.03"), "openrouter response usage.cost", "x", tools=Decimal("0.01"),
                     list_total=Decimal("0.032"))
    SpanSink(tracer_provider=provider).on_call(call)
    attrs = exporter.get_finished_spans()[0].attributes
    assert attrs["spendmeter.tool_uses.web_search"] == 3
    assert attrs["spendmeter.cost.tools_amount"] == pytest.approx(0.01)
    assert attrs["spendmeter.cost.list_amount"] == pytest.approx(0.032)
    assert attrs["gen_ai.usage.cost.amount"] == pytest.approx(0.03)
    assert attrs["spendmeter.usage.steps"] == 2 and tuple(attrs["spendmeter.usage.step_models"]) == (SONNET, OPUS)
