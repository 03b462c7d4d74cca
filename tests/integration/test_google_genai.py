"""google-genai over HTTP to the local fake provider, Gemini Developer API and Vertex AI modes:
generate_content (sync, async, streamed), chats, automatic function calling, embeddings: one Call per billed
request, disjoint tokens from `usage_metadata`, Gemini prices including the long-context tier."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest

from spendmeter.testing import FlushingSpanExporter

genai = pytest.importorskip("google.genai")

from google.genai import types  # noqa: E402
from google.oauth2.credentials import Credentials  # noqa: E402

from spendmeter import attribute  # noqa: E402
from spendmeter.call import Usage  # noqa: E402
from spendmeter.testing.gemini_wire import HEADER_TOOL_USE_PROMPT  # noqa: E402
from spendmeter.testing.scenarios import HEADER_KEY, HEADER_USAGE  # noqa: E402

HEADERS = {HEADER_USAGE: "input=176,cached=1024,output=100,reasoning=64"}
EXPECTED = Usage(input=176, cache_read=1024, output=100, reasoning=64, source="reported")


def _client(server, headers=None, *, vertex: bool = False):
    options = types.HttpOptions(base_url=server.gemini_base_url, headers=headers or HEADERS)
    if vertex:
        return genai.Client(vertexai=True, project="proj", location="us-central1", credentials=Credentials(token="t"),
                            http_options=options)
    return genai.Client(api_key="gm-test", http_options=options)


@pytest.fixture
def gem(provider_server):
    return _client(provider_server)


@pytest.fixture
def vertex(provider_server):
    return _client(provider_server, vertex=True)


def test_gemini_generate_content(instrumented, gem, provider_server):
    with attribute(user="alice", feature="support"):
        result = gem.models.generate_content(model="gemini-2.5-flash", contents="Where is my order #1234?")
    assert type(result) is types.GenerateContentResponse and result.text
    call = instrumented.one()
    assert call.usage == EXPECTED
    assert (call.provider, call.operation, call.request_model, call.model) == (
        "gcp.gemini", "generate_content", "gemini-2.5-flash", "gemini-2.5-flash")
    assert (call.attribution.user, call.status, call.server_port) == ("alice", "ok", provider_server.port)
    # 176 x 0.30 + 1024 x 0.03 + 100 x 2.50 per 1M (thoughts are output)
    assert call.cost.total == Decimal("0.00033352")


def test_vertex_generate_content(instrumented, vertex, provider_server):
    vertex.models.generate_content(model="publishers/google/models/gemini-2.5-flash", contents="hi")
    call = instrumented.one()
    assert (call.provider, call.request_model, call.usage) == ("gcp.vertex_ai", "gemini-2.5-flash", EXPECTED)
    assert "/projects/proj/locations/us-central1/" in provider_server.requests[-1].path
    assert call.priced


async def test_gemini_generate_content_async(instrumented, gem):
    with attribute(user="bob"):
        result = await gem.aio.models.generate_content(model="models/gemini-2.5-flash", contents="hi")
    assert result.usage_metadata.prompt_token_count == 1200
    call = instrumented.one()
    assert call.usage == EXPECTED and call.attribution.user == "bob" and call.request_model == "gemini-2.5-flash"


def test_gemini_generate_content_stream(instrumented, gem):
    chunks = list(gem.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert len(chunks) > 1 and all(type(c) is types.GenerateContentResponse for c in chunks)
    call = instrumented.one()
    assert call.stream and call.usage == EXPECTED and call.end_reason == "completed"
    assert call.finish_reasons == ("STOP",)


async def test_vertex_generate_content_stream_async(instrumented, vertex):
    stream = await vertex.aio.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
    texts = [c.text async for c in stream]
    assert "".join(texts)
    call = instrumented.one()
    assert (call.provider, call.stream, call.usage) == ("gcp.vertex_ai", True, EXPECTED)


def test_gemini_stream_broken_off_by_caller(instrumented, gem):
    stream = gem.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
    for _chunk in stream:
        break
    stream.close()
    import gc

    gc.collect()
    from spendmeter import recorder

    recorder.drain()
    call = instrumented.one()
    assert call.end_reason in ("closed_early", "abandoned") and call.usage.source == "reported"


def test_gemini_chat_each_turn_is_one_call(instrumented, gem):
    chat = gem.chats.create(model="gemini-2.5-flash")
    chat.send_message("first")
    list(chat.send_message_stream("second"))
    calls = instrumented.calls
    assert len(calls) == 2 and [c.stream for c in calls] == [False, True]
    assert all(c.usage == EXPECTED for c in calls)


def test_gemini_tool_use_prompt_tokens_are_input(instrumented, provider_server):
    client = _client(provider_server, {**HEADERS, HEADER_TOOL_USE_PROMPT: "40"})
    client.models.generate_content(model="gemini-2.5-flash", contents="search this")
    assert instrumented.one().usage == Usage(input=216, cache_read=1024, output=100, reasoning=64, source="reported")


def test_gemini_automatic_function_calling_counts_every_request(instrumented, gem, provider_server):
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    config = types.GenerateContentConfig(
        tools=[get_weather], automatic_function_calling=types.AutomaticFunctionCallingConfig(maximum_remote_calls=2))
    gem.models.generate_content(model="gemini-2.5-flash", contents="Weather in Paris?", config=config)
    posts = [r for r in provider_server.requests if r.method == "POST"]
    assert len(posts) == 2 and posts[0].body["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert len(instrumented.calls) == 2 and all(c.usage == EXPECTED for c in instrumented.calls)


def test_gemini_long_context_tier(instrumented, provider_server):
    client = _client(provider_server, {HEADER_USAGE: "input=250000,output=1000"})
    client.models.generate_content(model="gemini-2.5-pro", contents="a long document")
    call = instrumented.one()
    assert call.cost.total == Decimal("0.64")  # 250k x 2.50 + 1k x 15.00 per 1M: above 200k prompt tokens


def test_gemini_embed_content(instrumented, gem):
    result = gem.models.embed_content(model="gemini-embedding-001", contents=["one", "two"],
                                      config={"http_options": {"headers": {HEADER_USAGE: "input=42"}}})
    assert len(result.embeddings) == 2
    call = instrumented.one()
    assert (call.operation, call.usage) == ("embeddings", Usage(input=42, source="reported"))
    assert call.cost.total == Decimal("0.0000063")


async def test_vertex_embed_content_async(instrumented, vertex):
    await vertex.aio.models.embed_content(model="gemini-embedding-001", contents="hello there")
    call = instrumented.one()
    assert call.provider == "gcp.vertex_ai" and call.usage.input > 0 and call.usage.source == "reported"


def test_gemini_provider_error_is_one_error_call(instrumented, provider_server):
    client = _client(provider_server, {"x-fake-scenario": "error-400"})
    with pytest.raises(genai.errors.ClientError):
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    call = instrumented.one()
    assert call.status == "error" and call.usage.source == "missing"


async def test_gemini_each_user_exact_against_what_the_server_served(instrumented, provider_server):
    plan = [("alice", "input=100,cached=50,output=10"), ("bob", "input=7,output=2,reasoning=1"),
            ("alice", "input=11,cached=5,output=4")]
    for user, usage in plan:
        client = _client(provider_server, {HEADER_USAGE: usage, HEADER_KEY: user}, vertex=user == "bob")
        with attribute(user=user):
            stream = await client.aio.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")
            async for _ in stream:
                pass
    served: dict[str, int] = defaultdict(int)
    for request in provider_server.requests:
        counts = dict(part.split("=") for part in request.headers[HEADER_USAGE].split(","))
        served[request.headers[HEADER_KEY]] += int(counts["input"]) + int(counts.get("cached", 0)) + int(
            counts["output"])
    recorded: dict[str, int] = defaultdict(int)
    for call in instrumented.calls:
        recorded[call.attribution.user] += call.usage.total
    assert recorded == served


def test_gemini_span_names_the_provider_and_operation(instrumented, pipeline, gem, vertex):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from spendmeter.sinks.spans import SpanSink

    exporter, provider = FlushingSpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = SpanSink(tracer_provider=provider)
    pipeline.set(spans=spans, sinks=(*pipeline.current.sinks, spans))
    gem.models.generate_content(model="gemini-2.5-flash", contents="hi")
    vertex.models.generate_content(model="gemini-2.5-flash", contents="hi")
    found = [(s.attributes["gen_ai.provider.name"], s.attributes["gen_ai.operation.name"],
              s.attributes["gen_ai.usage.input_tokens"]) for s in exporter.get_finished_spans()]
    assert found == [("gcp.gemini", "generate_content", 1200), ("gcp.vertex_ai", "generate_content", 1200)]
