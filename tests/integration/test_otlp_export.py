"""Spans and metrics leave the process over real OTLP/HTTP, and the Anthropic SDK's own span nests under ours.

Both use local stdlib servers on 127.0.0.1: the OTLP receiver in tests/otlp_receiver.py, and a tiny
Messages-API stand-in for the anthropic SDK.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import anthropic
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as ProtoStatus
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tests.otlp_receiver import OtlpReceiver

from spendmeter.call import Attribution, Call, Cost, Unpriced, Usage
from spendmeter.sinks.otel_metrics import OtelMetricsSink
from spendmeter.sinks.spans import SpanSink
from spendmeter.testing import FlushingSpanExporter
from spendmeter.testing.records import labelled


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


def _cost(total: str) -> Cost:
    zero = Decimal(0)
    return Cost(zero, zero, zero, zero, Decimal(total), "genai-prices 0.2.3", "test-entry")


def _three_calls() -> list[Call]:
    t0 = datetime.now(UTC)
    common = dict(started_at=t0, ended_at=t0 + timedelta(milliseconds=800), duration_s=0.8)
    return [
        Call(
            provider="openai",
            operation="chat",
            request_model="gpt-4o-mini",
            response_model="gpt-4o-mini-2024-07-18",
            attribution=Attribution(user="alice", feature="search", agent="planner"),
            usage=Usage(input=900, cache_read=100, output=200, source="reported"),
            cost=_cost("0.000255"),
            **common,
        ),
        Call(
            provider="anthropic",
            operation="messages",
            request_model="claude-3-haiku-20240307",
            response_model="claude-3-haiku-20240307",
            attribution=Attribution(user="bob", feature="support", agent="router", conversation="c-7"),
            usage=Usage(input=50, cache_write_5m=1000, output=10, source="reported"),
            cost=_cost("0.0012"),
            **common,
        ),
        Call(
            provider="openai",
            operation="chat",
            request_model="mystery-model",
            attribution=Attribution(user="alice", feature="search", agent="planner"),
            usage=Usage(input=10, output=1, source="estimated"),
            cost=Unpriced("no price for mystery-model"),
            status="error",
            error_type="InternalServerError",
            end_reason="error",
            **common,
        ),
    ]


def test_spans_and_metrics_arrive_over_otlp_http(receiver):
    resource = Resource.create({"service.name": "spendmeter-test"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.traces_endpoint))
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=receiver.metrics_endpoint), export_interval_millis=3_600_000
    )
    meter_provider = MeterProvider(metric_readers=[reader], resource=resource)
    spans, metrics = SpanSink(tracer_provider=tracer_provider), OtelMetricsSink(meter_provider=meter_provider)
    try:
        for call in map(labelled, _three_calls()):
            spans.on_start(call)
            spans.on_call(call)
            metrics.on_call(call)
        assert tracer_provider.force_flush(5_000)
        assert meter_provider.force_flush(5_000)
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()
    assert receiver.errors == []

    got = {s["attributes"]["gen_ai.request.model"]: s for s in receiver.spans()}
    assert sorted(s["name"] for s in got.values()) == [
        "chat claude-3-haiku-20240307",
        "chat gpt-4o-mini",
        "chat mystery-model",
    ]
    for span in got.values():
        assert span["kind"] == ProtoSpan.SPAN_KIND_CLIENT
        assert span["scope"] == "spendmeter"
        assert span["resource"]["service.name"] == "spendmeter-test"
        assert span["end_ns"] - span["start_ns"] == 800_000_000
    haiku = got["claude-3-haiku-20240307"]["attributes"]
    assert haiku["user.id"] == "bob"
    assert haiku["gen_ai.conversation.id"] == "c-7"
    assert haiku["gen_ai.usage.input_tokens"] == 1050
    assert haiku["gen_ai.usage.cache_creation.input_tokens"] == 1000
    assert haiku["gen_ai.usage.cost.amount"] == pytest.approx(0.0012)
    assert haiku["gen_ai.usage.cost.currency"] == "USD"
    mystery = got["mystery-model"]
    assert mystery["status_code"] == ProtoStatus.STATUS_CODE_ERROR
    assert mystery["attributes"]["error.type"] == "InternalServerError"
    assert mystery["attributes"]["spendmeter.unpriced.reason"] == "no price for mystery-model"
    assert "gen_ai.usage.cost.amount" not in mystery["attributes"]

    cost = receiver.latest("llm_cost_usd")
    assert {p["attributes"]["user"]: p["value"] for p in cost} == pytest.approx(
        {"alice": 0.000255, "bob": 0.0012}
    )
    assert all(p["is_monotonic"] and p["unit"] == "{USD}" for p in cost)
    assert sum(p["value"] for p in cost) == pytest.approx(0.001455)
    (unpriced,) = receiver.latest("llm_unpriced_requests")
    assert unpriced["value"] == 1 and unpriced["attributes"] == {
        "provider": "openai",
        "model": "mystery-model",
    }
    requests: dict[tuple[str, str], int] = {}
    for p in receiver.latest("llm_requests"):
        key = (p["attributes"]["status"], p["attributes"]["usage"])
        requests[key] = requests.get(key, 0) + p["value"]
    assert requests == {("ok", "reported"): 2, ("error", "estimated"): 1}
    token_usage = receiver.latest("gen_ai.client.token.usage", **{"gen_ai.token.type": "input"})
    assert sorted(p["sum"] for p in token_usage) == [10, 1000, 1050]  # input-side: all input classes
    assert token_usage[0]["unit"] == "{token}" and token_usage[0]["bounds"][:3] == (1, 4, 16)


# --- The Anthropic SDK's own span nests under ours -------------------------------------------------------

MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-haiku-20240307",
    "content": [{"type": "text", "text": "hi"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 5, "output_tokens": 2},
}


class _MessagesHandler(BaseHTTPRequestHandler):
    traceparents: ClassVar[list[str | None]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).traceparents.append(self.headers.get("traceparent"))
        body = json.dumps(MESSAGE).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def messages_server() -> Iterator[str]:
    _MessagesHandler.traceparents = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MessagesHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = FlushingSpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _new_call() -> Call:
    return Call(
        provider="anthropic",
        operation="messages",
        request_model="claude-3-haiku-20240307",
        attribution=Attribution(user="alice", feature="support"),
    )


REQUEST = dict(
    model="claude-3-haiku-20240307", max_tokens=16, messages=[{"role": "user", "content": "hello"}]
)


def _finish(sink: SpanSink, call: Call, message: anthropic.types.Message) -> None:
    call.response_model, call.response_id = message.model, message.id
    call.usage = Usage(
        input=message.usage.input_tokens, output=message.usage.output_tokens, source="reported"
    )
    call.ended_at = datetime.now(UTC)
    sink.on_call(call)


def _assert_sdk_span_nests_under_ours(exporter: InMemorySpanExporter) -> None:
    finished = exporter.get_finished_spans()
    ours = [s for s in finished if s.instrumentation_scope.name == "spendmeter"]
    sdk = [s for s in finished if s.instrumentation_scope.name != "spendmeter"]
    assert len(ours) == 1, [s.name for s in finished]
    assert len(sdk) == 1, [(s.name, s.instrumentation_scope.name) for s in finished]
    (our_span,), (sdk_span,) = ours, sdk
    assert our_span.name == "chat claude-3-haiku-20240307"
    assert sdk_span.instrumentation_scope.name == "com.anthropic.sdk.python"
    assert sdk_span.kind is SpanKind.CLIENT
    assert sdk_span.parent is not None and sdk_span.parent.span_id == our_span.context.span_id
    assert sdk_span.context.trace_id == our_span.context.trace_id
    assert our_span.parent is None
    # attribution and cost live on ours; the SDK's span keeps its HTTP-level facts
    assert our_span.attributes["user.id"] == "alice"
    assert our_span.attributes["gen_ai.usage.input_tokens"] == 5
    assert "user.id" not in sdk_span.attributes
    # the request carried the SDK span's context, in our trace
    (traceparent,) = _MessagesHandler.traceparents
    _, trace_id, parent_id, _ = traceparent.split("-")
    assert int(trace_id, 16) == our_span.context.trace_id
    assert int(parent_id, 16) == sdk_span.context.span_id


def test_anthropic_sdk_span_is_a_child_of_our_span(messages_server):
    provider, exporter = _tracing()
    client = anthropic.Anthropic(
        base_url=messages_server, api_key="test", max_retries=0, open_telemetry={"tracer_provider": provider}
    )
    sink, call = SpanSink(tracer_provider=provider), _new_call()

    sink.on_start(call)
    with sink.activate(call):
        message = client.messages.create(**REQUEST)
    _finish(sink, call, message)

    _assert_sdk_span_nests_under_ours(exporter)


async def test_async_anthropic_sdk_span_is_a_child_of_our_span(messages_server):
    provider, exporter = _tracing()
    client = anthropic.AsyncAnthropic(
        base_url=messages_server, api_key="test", max_retries=0, open_telemetry={"tracer_provider": provider}
    )
    sink, call = SpanSink(tracer_provider=provider), _new_call()

    sink.on_start(call)
    with sink.activate(call):
        message = await client.messages.create(**REQUEST)
    _finish(sink, call, message)

    _assert_sdk_span_nests_under_ours(exporter)


def test_without_sdk_spans_the_request_still_carries_our_trace_context(messages_server):
    """spendmeter has a provider, the SDK none (init() with an OTLP endpoint sets no global one)."""
    provider, exporter = _tracing()
    client = anthropic.Anthropic(
        base_url=messages_server,
        api_key="test",
        max_retries=0,
        open_telemetry={"tracer_provider": trace.NoOpTracerProvider()},
    )
    sink, call = SpanSink(tracer_provider=provider), _new_call()

    sink.on_start(call)
    with sink.activate(call):
        message = client.messages.create(**REQUEST)
    _finish(sink, call, message)

    (our_span,) = exporter.get_finished_spans()
    (traceparent,) = _MessagesHandler.traceparents
    _, trace_id, parent_id, _ = traceparent.split("-")
    assert (int(trace_id, 16), int(parent_id, 16)) == (our_span.context.trace_id, our_span.context.span_id)
