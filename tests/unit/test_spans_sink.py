"""SpanSink with hand-made Call records, read back through an in-memory span exporter."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from spendmeter.call import Attribution, Call, Cost, Unpriced, Usage
from spendmeter.sinks.deferred_span import DeferredSpan
from spendmeter.sinks.spans import SpanSink, reads_attributes
from spendmeter.telemetry import semconv as sc
from spendmeter.testing import FlushingSpanExporter

STARTED = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return FlushingSpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp


def _call(**overrides: object) -> Call:
    fields: dict[str, object] = dict(
        provider="anthropic",
        operation="messages",
        request_model="claude-sonnet-4-5",
        attribution=Attribution(user="alice", feature="support", agent="router", conversation="c-42"),
        started_at=STARTED,
        request_max_tokens=1024,
        server_address="api.anthropic.com",
        server_port=443,
        response_model="claude-sonnet-4-5-20250929",
        response_id="msg_01",
        finish_reasons=("end_turn",),
        attempts=2,
        end_reason="completed",
        usage=Usage(
            input=100, cache_read=2000, cache_write_5m=300, cache_write_1h=0, output=50, source="reported"
        ),
        cost=Cost(
            input=Decimal("0.0003"),
            cache_read=Decimal("0.0006"),
            cache_write=Decimal("0.001125"),
            output=Decimal("0.00075"),
            total=Decimal("0.002775"),
            source="genai-prices 0.2.3",
            price_entry="anthropic/claude-sonnet-4-5",
        ),
        ended_at=STARTED + timedelta(seconds=1.5),
        duration_s=1.5,
    )
    fields.update(overrides)
    return Call(**fields)  # type: ignore[arg-type]


def _run(sink: SpanSink, call: Call) -> None:
    sink.on_start(call)
    sink.on_call(call)


def test_ok_call_with_cache_tokens_has_exact_attributes(provider, exporter):
    call = _call()
    _run(SpanSink(tracer_provider=provider), call)

    (span,) = exporter.get_finished_spans()
    assert span.name == "chat claude-sonnet-4-5"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert span.start_time == int(STARTED.timestamp()) * 10**9 + 123456 * 1000
    assert span.end_time - span.start_time == 1_500_000_000
    expected = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.request.max_tokens": 1024,
        "server.address": "api.anthropic.com",
        "server.port": 443,
        "user.id": "alice",
        "spendmeter.feature": "support",
        "gen_ai.agent.name": "router",
        "gen_ai.conversation.id": "c-42",
        "spendmeter.operation": "messages",
        "gen_ai.response.model": "claude-sonnet-4-5-20250929",
        "gen_ai.response.id": "msg_01",
        "gen_ai.response.finish_reasons": ("end_turn",),
        "spendmeter.attempts": 2,
        "spendmeter.status": "ok",
        "spendmeter.end_reason": "completed",
        "spendmeter.usage.source": "reported",
        # semconv input_tokens include cached and cache-write tokens: 100 + 2000 + 300
        "gen_ai.usage.input_tokens": 2400,
        "gen_ai.usage.output_tokens": 50,
        "gen_ai.usage.cache_read.input_tokens": 2000,
        "gen_ai.usage.cache_creation.input_tokens": 300,
        "gen_ai.usage.reasoning.output_tokens": 0,
        "gen_ai.usage.cost.amount": 0.002775,
        "gen_ai.usage.cost.currency": "USD",
        "gen_ai.usage.cost.source": "genai-prices 0.2.3",
        "spendmeter.price.entry": "anthropic/claude-sonnet-4-5",
    }
    assert dict(span.attributes) == expected
    assert call.span is not None


_SAMPLING_SET = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                 "gen_ai.request.model": "claude-sonnet-4-5", "server.address": "api.anthropic.com",
                 "server.port": 443}


class _AttributeSampler(sampling.Sampler):
    """A sampler that decides on attributes, as the GenAI conventions allow."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        self.seen.append(dict(attributes or {}))
        return sampling.ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links)

    def get_description(self) -> str:
        return "AttributeSampler"


@pytest.mark.parametrize("wrap", [lambda s: s, sampling.ParentBased])
def test_a_sampler_that_may_read_attributes_gets_the_sampling_relevant_set_at_start(exporter, wrap):
    sampler = _AttributeSampler()
    tp = TracerProvider(sampler=wrap(sampler))
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    call = _call(server_address="api.anthropic.com", server_port=443)
    SpanSink(tracer_provider=tp).on_start(call)
    # The GenAI conventions' sampling-relevant set; attribution and usage come when the call is finished.
    assert sampler.seen == [_SAMPLING_SET]
    assert dict(call.span.attributes) == _SAMPLING_SET
    assert exporter.get_finished_spans() == ()  # not ended until on_call
    SpanSink(tracer_provider=tp).on_call(call)
    assert len(exporter.get_finished_spans()) == 1


@pytest.mark.parametrize("defer_start", [True, False])
def test_with_the_sdks_own_sampler_the_span_starts_bare_and_ends_with_the_same_attributes(provider, exporter,
                                                                                           defer_start):
    """The default sampler (parent-based always-on) reads no attributes, so none are validated on the caller's
    thread (and the start itself is deferred, `test_deferred_span.py`); the exported span is the same. Fails
    loudly if the SDK's sampler descriptions change (every span would then pay for them at start again)."""
    call = _call(server_address="api.anthropic.com", server_port=443)
    sink = SpanSink(tracer_provider=provider, defer_start=defer_start)
    sink.on_start(call)
    if defer_start:
        assert type(call.span) is DeferredSpan
    else:
        assert dict(call.span.attributes) == {}
    sink.on_call(call)
    (span,) = exporter.get_finished_spans()
    assert _SAMPLING_SET.items() <= dict(span.attributes).items()


@pytest.mark.parametrize(("sampler", "reads"), [
    (sampling.ALWAYS_ON, False), (sampling.ALWAYS_OFF, False), (sampling.DEFAULT_ON, False),
    (sampling.DEFAULT_OFF, False), (sampling.TraceIdRatioBased(0.25), False),
    (sampling.ParentBasedTraceIdRatio(0.5), False),
    (sampling.ParentBased(sampling.ALWAYS_ON, remote_parent_sampled=_AttributeSampler()), True),
    (_AttributeSampler(), True), (None, True),
])
def test_which_samplers_read_attributes(sampler, reads):
    assert reads_attributes(sampler) is reads


def test_one_hour_cache_writes_are_split_out(provider, exporter):
    usage = Usage(input=10, cache_write_5m=100, cache_write_1h=400, output=5, source="reported")
    _run(SpanSink(tracer_provider=provider), _call(usage=usage))
    attrs = exporter.get_finished_spans()[0].attributes
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 500
    assert attrs["gen_ai.usage.input_tokens"] == 510
    assert attrs["spendmeter.usage.cache_write_5m.input_tokens"] == 100
    assert attrs["spendmeter.usage.cache_write_1h.input_tokens"] == 400


def test_openai_service_tier_uses_openai_semconv_names(provider, exporter):
    call = _call(
        provider="openai",
        operation="chat",
        request_model="gpt-4o-mini",
        request_service_tier="flex",
        service_tier="flex",
        stream=True,
        usage=Usage(input=7, cache_read=3, output=4, reasoning=2, source="reported"),
    )
    _run(SpanSink(tracer_provider=provider), call)
    attrs = exporter.get_finished_spans()[0].attributes
    assert attrs[sc.OPENAI_REQUEST_SERVICE_TIER] == "flex"
    assert attrs[sc.OPENAI_RESPONSE_SERVICE_TIER] == "flex"
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.usage.input_tokens"] == 10
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 2
    assert "spendmeter.request.service_tier" not in attrs


def test_error_call_sets_status_and_error_type(provider, exporter):
    call = _call(
        status="error",
        error_type="RateLimitError",
        end_reason="error",
        response_model=None,
        response_id=None,
        finish_reasons=(),
        usage=Usage(),
        cost=None,
    )
    _run(SpanSink(tracer_provider=provider), call)
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RateLimitError"
    assert span.attributes["error.type"] == "RateLimitError"
    assert span.attributes["spendmeter.end_reason"] == "error"
    assert span.attributes["spendmeter.usage.source"] == "missing"
    # missing usage is not written as zeros
    assert "gen_ai.usage.input_tokens" not in span.attributes
    assert not any(k.startswith("gen_ai.usage.cost") for k in span.attributes)


def test_error_without_type_falls_back_to_other(provider, exporter):
    _run(SpanSink(tracer_provider=provider), _call(status="error", error_type=None, cost=None))
    assert exporter.get_finished_spans()[0].attributes["error.type"] == "_OTHER"


def test_unpriced_call_has_reason_and_no_cost(provider, exporter):
    _run(SpanSink(tracer_provider=provider), _call(cost=Unpriced("no price for model 'mystery-1'")))
    attrs = exporter.get_finished_spans()[0].attributes
    assert attrs["spendmeter.unpriced.reason"] == "no price for model 'mystery-1'"
    assert not any(k.startswith("gen_ai.usage.cost") for k in attrs)
    assert attrs["gen_ai.usage.input_tokens"] == 2400  # usage is still there


CAPTURE = {
    "input_messages": [{"role": "user", "parts": [{"type": "text", "content": "hello"}]}],
    "output_messages": [
        {"role": "assistant", "parts": [{"type": "text", "content": "hi"}], "finish_reason": "stop"}
    ],
}


def test_content_is_not_recorded_unless_capture_is_on(provider, exporter):
    _run(SpanSink(tracer_provider=provider), _call(capture=CAPTURE))
    attrs = exporter.get_finished_spans()[0].attributes
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs


def test_content_is_recorded_as_json_when_capture_is_on(provider, exporter):
    _run(SpanSink(tracer_provider=provider, capture_content=True), _call(capture=CAPTURE))
    attrs = exporter.get_finished_spans()[0].attributes
    assert json.loads(attrs["gen_ai.input.messages"]) == CAPTURE["input_messages"]
    assert json.loads(attrs["gen_ai.output.messages"]) == CAPTURE["output_messages"]


def test_on_call_without_on_start_still_emits_one_span(provider, exporter):
    _run_only_finish = SpanSink(tracer_provider=provider)
    _run_only_finish.on_call(_call())
    (span,) = exporter.get_finished_spans()
    assert span.name == "chat claude-sonnet-4-5"
    assert span.start_time < span.end_time
    assert span.attributes["gen_ai.usage.cost.amount"] == 0.002775


def test_missing_request_model_names_span_by_operation(provider, exporter):
    _run(SpanSink(tracer_provider=provider), _call(operation="embeddings", request_model=None))
    assert exporter.get_finished_spans()[0].name == "embeddings"


def test_activate_nests_sdk_spans_under_ours(provider, exporter):
    sink = SpanSink(tracer_provider=provider)
    call = _call()
    outer_tracer = provider.get_tracer("app")
    with outer_tracer.start_as_current_span("handler") as app_span:
        sink.on_start(call)
        with sink.activate(call):
            assert trace.get_current_span() is call.span
            with provider.get_tracer("some-sdk").start_as_current_span("POST"):
                pass
        assert trace.get_current_span() is app_span  # detached again
        sink.on_call(call)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    ours, child, root = spans["chat claude-sonnet-4-5"], spans["POST"], spans["handler"]
    assert child.parent.span_id == ours.context.span_id
    assert ours.parent.span_id == root.context.span_id  # ours nests under the application's span
    assert child.context.trace_id == ours.context.trace_id == root.context.trace_id


def test_activate_is_a_no_op_without_a_valid_span(provider):
    sink = SpanSink(tracer_provider=provider)
    call = _call()
    before = trace.get_current_span()
    with sink.activate(call):  # on_start never ran
        assert trace.get_current_span() is before
    noop_sink = SpanSink(tracer_provider=trace.NoOpTracerProvider())
    noop_sink.on_start(call)
    with noop_sink.activate(call):
        assert trace.get_current_span() is before
    noop_sink.on_call(call)  # ending a no-op span is harmless


def test_activate_restores_context_when_the_sdk_raises(provider):
    sink = SpanSink(tracer_provider=provider)
    call = _call()
    sink.on_start(call)
    before = trace.get_current_span()
    with pytest.raises(ZeroDivisionError), sink.activate(call):
        1 / 0  # noqa: B018
    assert trace.get_current_span() is before
    sink.on_call(call)


def test_a_failing_span_write_is_contained_counted_and_the_span_still_ends(provider, exporter, pipeline,
                                                                           monkeypatch, caplog):
    from spendmeter import recorder
    from spendmeter.providers.base import RequestFacts, ResponseFacts
    from spendmeter.sinks import spans as spans_module

    def broken(call: Call) -> Any:
        raise TypeError("a bug in our attribute code")

    errors: list[str] = []
    sink = SpanSink(tracer_provider=provider)
    pipeline.set(sinks=(sink,), spans=sink, count_error=lambda kind, n=1: errors.append(kind))
    monkeypatch.setattr(spans_module, "_usage_attributes", broken)
    call = recorder.start(RequestFacts(provider="openai", operation="chat", model="gpt-4o-mini"))
    recorder.finish(call, ResponseFacts(usage=Usage(input=3, output=1, source="reported")))
    recorder.drain()
    assert errors == ["sink.spans"]
    assert "spendmeter internal error (sink.spans)" in caplog.text
    assert len(exporter.get_finished_spans()) == 1  # ended, not leaked


def test_naive_timestamps_are_taken_as_utc(provider, exporter):
    naive = STARTED.replace(tzinfo=None)
    _run(SpanSink(tracer_provider=provider), _call(started_at=naive, ended_at=naive + timedelta(seconds=2)))
    span = exporter.get_finished_spans()[0]
    assert span.start_time == int(STARTED.timestamp()) * 10**9 + 123456 * 1000
    assert span.end_time - span.start_time == 2 * 10**9


def test_content_with_the_hooks_capture_keys(provider, exporter):
    capture = {"input": [{"role": "user", "content": "hello"}], "system": "be brief"}
    _run(SpanSink(tracer_provider=provider, capture_content=True), _call(capture=capture))
    attrs = exporter.get_finished_spans()[0].attributes
    assert json.loads(attrs["gen_ai.input.messages"]) == capture["input"]
    assert attrs["gen_ai.system_instructions"] == "be brief"
    assert "gen_ai.output.messages" not in attrs
