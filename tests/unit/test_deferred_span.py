"""Deferred span starts (`sinks.deferred_span`) on the real OpenTelemetry SDK: the ids and the sampling decision
are fixed when the call starts, the span is started with them when the call is finished, and what is exported
is what a span started at the call's start would have been. These tests fail loudly if the SDK stops starting
spans with its tracer's `id_generator`, which the deferral relies on."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind

from spendmeter.call import Attribution, Call, Usage
from spendmeter.sinks.deferred_span import Deferral, DeferralBroken, DeferredSpan, PresetIds
from spendmeter.sinks.spans import SpanSink

STARTED = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


class _Starts(SpanProcessor):
    """Notes when the SDK tells processors a span started."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def on_start(self, span, parent_context=None) -> None:
        self.started.append(span.name)

    def on_end(self, span: ReadableSpan) -> None:
        pass


def _provider(**kwargs: object) -> tuple[TracerProvider, InMemorySpanExporter, _Starts]:
    exporter, starts = InMemorySpanExporter(), _Starts()
    tp = TracerProvider(**kwargs)  # type: ignore[arg-type]
    tp.add_span_processor(starts)
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp, exporter, starts


def _call() -> Call:
    return Call(
        provider="anthropic", operation="messages", request_model="claude-sonnet-4-5",
        attribution=Attribution(user="alice"), started_at=STARTED, start_ns=1_740_830_400_123_456_000,
        server_address="api.anthropic.com", server_port=443, usage=Usage(input=10, output=5, source="reported"),
        ended_at=STARTED + timedelta(seconds=1), end_ns=1_740_830_401_123_456_000, duration_s=1.0,
    )


def _spans(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {s.name: s for s in exporter.get_finished_spans()}


def test_the_span_starts_when_the_call_is_finished_with_the_ids_its_children_carry():
    tp, exporter, starts = _provider()
    sink, call = SpanSink(tracer_provider=tp), _call()
    with tp.get_tracer("app").start_as_current_span("handler"):
        sink.on_start(call)
        assert type(call.span) is DeferredSpan
        with sink.activate(call):
            assert trace.get_current_span() is call.span
            with tp.get_tracer("anthropic-sdk").start_as_current_span("POST /v1/messages"):
                pass
        noted = call.span.get_span_context()
    assert starts.started == ["handler", "POST /v1/messages"]  # ours is not started yet
    sink.on_call(call)
    assert starts.started[-1] == "chat claude-sonnet-4-5"
    spans = _spans(exporter)
    ours, child, root = spans["chat claude-sonnet-4-5"], spans["POST /v1/messages"], spans["handler"]
    assert (ours.context.trace_id, ours.context.span_id) == (noted.trace_id, noted.span_id)
    assert ours.context.trace_flags == noted.trace_flags
    assert child.parent.span_id == ours.context.span_id
    assert ours.parent.span_id == root.context.span_id
    assert child.context.trace_id == ours.context.trace_id == root.context.trace_id
    assert ours.kind is SpanKind.CLIENT
    assert (ours.start_time, ours.end_time) == (call.start_ns, call.end_ns)
    assert ours.attributes["gen_ai.provider.name"] == "anthropic"
    assert ours.attributes["gen_ai.usage.input_tokens"] == 10


def test_a_root_span_gets_a_trace_id_from_the_providers_id_generator_with_the_sdks_flags():
    class Counting(RandomIdGenerator):
        def __init__(self) -> None:
            self.n = 0

        def generate_span_id(self) -> int:
            self.n += 1
            return 0xABC000 + self.n

        def generate_trace_id(self) -> int:
            return 0x1234

    tp, exporter, _ = _provider(id_generator=Counting())
    sink, call = SpanSink(tracer_provider=tp), _call()
    sink.on_start(call)
    noted = call.span.get_span_context()
    sink.on_call(call)
    (ours,) = exporter.get_finished_spans()
    assert ours.parent is None
    assert ours.context.trace_flags == noted.trace_flags  # what children and traceparent carried
    assert (ours.context.trace_id, ours.context.span_id) == (0x1234, 0xABC001)
    bare = tp.get_tracer("app").start_span("bare")  # the SDK's own flags for a root span, for comparison
    bare.end()
    assert ours.context.trace_flags == bare.context.trace_flags
    assert bare.context.span_id == 0xABC002  # other spans of the provider still get the generator's ids


@pytest.mark.parametrize("sampler", [sampling.ALWAYS_OFF, sampling.ParentBased(sampling.ALWAYS_OFF)])
def test_a_dropped_span_is_decided_at_the_start_and_nothing_is_started(sampler):
    tp, exporter, starts = _provider(sampler=sampler)
    sink, call = SpanSink(tracer_provider=tp), _call()
    sink.on_start(call)
    assert not call.span.get_span_context().trace_flags.sampled
    with sink.activate(call), tp.get_tracer("anthropic-sdk").start_as_current_span("POST"):
        pass  # a parent-based child of a dropped span is dropped too
    sink.on_call(call)
    assert starts.started == [] and exporter.get_finished_spans() == ()


def test_a_ratio_sampler_decides_the_same_at_the_start_as_it_would_when_finished():
    tp, exporter, _ = _provider(sampler=sampling.TraceIdRatioBased(0.5))
    sink = SpanSink(tracer_provider=tp)
    calls = [_call() for _ in range(200)]
    for call in calls:
        sink.on_start(call)
    sampled = {c.span.get_span_context().span_id for c in calls if c.span.get_span_context().trace_flags.sampled}
    for call in calls:
        sink.on_call(call)
    assert 40 < len(sampled) < 160
    assert {s.context.span_id for s in exporter.get_finished_spans()} == sampled


def test_a_tracer_that_stops_using_its_id_generator_is_detected_and_deferral_stops():
    tp, exporter, _ = _provider()
    sink, call = SpanSink(tracer_provider=tp), _call()
    sink.on_start(call)
    tracer = call.span.deferral.tracer
    wrapped = tracer.id_generator
    tracer.id_generator = RandomIdGenerator()  # an SDK that no longer starts spans with the preset ids
    try:
        with pytest.raises(DeferralBroken):
            sink.on_call(call)
        (ours,) = exporter.get_finished_spans()  # exported all the same, complete
        assert ours.attributes["gen_ai.usage.input_tokens"] == 10
        later = _call()
        sink.on_start(later)
        assert type(later.span) is not DeferredSpan and later.span.is_recording()  # started on the caller's thread
        sink.on_call(later)
    finally:
        tracer.id_generator = wrapped


def test_a_sampler_that_may_read_attributes_is_never_deferred():
    class Reading(sampling.Sampler):
        def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None,
                          trace_state=None):
            return sampling.ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links)

        def get_description(self) -> str:
            return "Reading"

    tp, _, starts = _provider(sampler=Reading())
    sink, call = SpanSink(tracer_provider=tp), _call()
    sink.on_start(call)
    assert type(call.span) is not DeferredSpan and starts.started == ["chat claude-sonnet-4-5"]
    sink.on_call(call)


def test_preset_ids_are_per_thread_and_otherwise_the_wrapped_generators():
    ids = PresetIds(RandomIdGenerator())
    ids.preset((7, 9))
    seen: list[int] = []
    other = threading.Thread(target=lambda: seen.append(ids.generate_span_id()))
    other.start()
    other.join()
    assert (ids.generate_trace_id(), ids.generate_span_id()) == (7, 9)
    assert seen[0] not in (0, 9)
    ids.preset(None)
    assert ids.generate_span_id() != 9
    assert ids.is_trace_id_random() is RandomIdGenerator().is_trace_id_random()


def test_sinks_made_at_once_on_many_threads_share_one_id_wrapper_and_every_span_keeps_its_ids():
    tp, exporter, _ = _provider()
    barrier = threading.Barrier(8)
    noted: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def one() -> None:
        sink, call = SpanSink(tracer_provider=tp), _call()
        barrier.wait()
        try:
            sink.on_start(call)
            context = call.span.get_span_context()
            noted.append((context.trace_id, context.span_id))
            sink.on_call(call)
        except BaseException as exc:  # a DeferralBroken would land here
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted((s.context.trace_id, s.context.span_id) for s in exporter.get_finished_spans()) == sorted(noted)
    assert len(set(noted)) == 8


def test_a_span_kept_at_the_start_but_dropped_when_started_is_detected_instead_of_lost():
    tp, exporter, _ = _provider()
    tracer = tp.get_tracer("spendmeter-test")
    deferral = Deferral(tracer)
    deferred = deferral.defer("chat m")
    assert deferred.get_span_context().trace_flags.sampled
    tracer.sampler = sampling.ALWAYS_OFF  # a sampler that answers otherwise the second time
    try:
        with pytest.raises(DeferralBroken):
            deferral.start(deferred, None)
    finally:
        tracer.sampler = tp.sampler
    assert deferral.broken and exporter.get_finished_spans() == ()
