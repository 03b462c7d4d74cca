"""The fake provider server, driven by the real `openai` and `anthropic` SDKs over real HTTP.

Each test asserts what the SDK parsed, so a wire-format slip (a missing field, a wrong event order) shows up
as the SDK failing or reporting other numbers than the scenario header asked for.
"""

from __future__ import annotations

import math
import socket
import time

import anthropic
import httpx2
import openai
import pytest

from spendmeter.testing import ProviderServer
from spendmeter.testing import scenarios as scn

MESSAGES = [{"role": "user", "content": "How much did the support agent spend today?"}]
USAGE = {scn.HEADER_USAGE: "input=176,cached=1024,output=100,reasoning=40"}
ANTHROPIC_USAGE = {scn.HEADER_USAGE: "input=12,cached=300,cache_write=40,cache_write_1h=8,output=77"}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
OPENAI_WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": WEATHER_TOOL["input_schema"]},
}


@pytest.fixture(scope="module")
def server():
    with ProviderServer() as srv:
        yield srv


@pytest.fixture
def srv(server: ProviderServer) -> ProviderServer:
    server.clear()
    return server


@pytest.fixture
def oai(srv: ProviderServer):
    with openai.OpenAI(base_url=srv.openai_base_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
def ant(srv: ProviderServer):
    with anthropic.Anthropic(base_url=srv.anthropic_base_url, api_key="test", max_retries=0) as client:
        yield client


def _scenario(name: str, **extra: str) -> dict[str, str]:
    return {scn.HEADER_SCENARIO: name, **extra}


# --- OpenAI chat completions ------------------------------------------------------------------------


def test_openai_chat_json_reports_header_usage_snapshot_model_and_tier(oai, srv):
    headers = {**USAGE, scn.HEADER_TIER: "priority"}
    result = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers)

    assert result.model == "gpt-4o-mini-2024-07-18"
    assert result.service_tier == "priority"
    assert result.usage.prompt_tokens == 176 + 1024
    assert result.usage.prompt_tokens_details.cached_tokens == 1024
    assert result.usage.completion_tokens == 100
    assert result.usage.completion_tokens_details.reasoning_tokens == 40
    assert result.usage.total_tokens == 1300
    assert result.choices[0].message.content
    (req,) = srv.requests
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.body["model"] == "gpt-4o-mini" and req.headers[scn.HEADER_TIER] == "priority"


def test_openai_chat_derives_usage_deterministically_from_the_prompt(oai):
    first = oai.chat.completions.create(model="gpt-x", messages=MESSAGES, service_tier="flex")
    second = oai.chat.completions.create(model="gpt-x", messages=MESSAGES, service_tier="flex")

    expected_input = math.ceil(len(MESSAGES[0]["content"]) / 4)
    assert first.usage.prompt_tokens == expected_input
    assert first.usage.completion_tokens == min(scn.DEFAULT_MAX_OUTPUT, 8 + expected_input % 13)
    assert first.usage == second.usage and first.choices[0].message.content == second.choices[0].message.content
    assert first.model == "gpt-x" and first.service_tier == "flex"


def test_openai_chat_stream_with_include_usage_ends_with_usage_only_chunk(oai):
    stream = oai.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=USAGE,
    )
    chunks = list(stream)

    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 1200
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == 40
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert {c.model for c in chunks} == {"gpt-4o-2024-08-06"}


def test_openai_chat_stream_without_include_usage_has_no_usage(oai):
    chunks = list(oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=USAGE))

    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks).count(" ") >= scn.MIN_WORDS - 1


def test_openai_chat_stream_helper_gives_final_completion(oai):
    with oai.chat.completions.stream(
        model="gpt-4o-mini", messages=MESSAGES, stream_options={"include_usage": True}, extra_headers=USAGE
    ) as stream:
        text = "".join(e.delta for e in stream if e.type == "content.delta")
        final = stream.get_final_completion()

    assert final.choices[0].message.content == text
    assert final.usage.prompt_tokens_details.cached_tokens == 1024


def test_openai_chat_tool_call_json_and_stream(oai):
    result = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=[OPENAI_WEATHER_TOOL])
    call = result.choices[0].message.tool_calls[0]
    assert result.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"city": "Paris"}')

    with oai.chat.completions.stream(
        model="gpt-4o", messages=MESSAGES, tools=[OPENAI_WEATHER_TOOL], extra_headers=_scenario("tool-call")
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.arguments == '{"city": "Paris"}'


async def test_openai_async_chat_stream(srv):
    async with openai.AsyncOpenAI(base_url=srv.openai_base_url, api_key="test") as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=USAGE,
        )
        chunks = [c async for c in stream]
    assert chunks[-1].usage.total_tokens == 1300


# --- OpenAI Responses, completions, embeddings, Azure ------------------------------------------------


def test_openai_responses_json_usage(oai):
    result = oai.responses.create(model="o4-mini", input="Summarize the invoice", extra_headers=USAGE)

    assert result.model == "o4-mini-2025-04-16" and result.status == "completed"
    assert result.usage.input_tokens == 1200
    assert result.usage.input_tokens_details.cached_tokens == 1024
    assert result.usage.output_tokens == 100
    assert result.usage.output_tokens_details.reasoning_tokens == 40
    assert [item.type for item in result.output] == ["reasoning", "message"]
    assert result.output_text and result.service_tier == "default"


def test_openai_responses_stream_has_the_real_event_sequence(oai):
    events = list(oai.responses.create(model="gpt-4o-mini", input="hi", stream=True, extra_headers=USAGE))
    kinds = [e.type for e in events]
    collapsed = [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1]]  # one entry per delta run

    assert collapsed == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",  # the reasoning item (reasoning tokens were asked for)
        "response.output_item.done",
        "response.output_item.added",  # the message
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].response.usage is None
    assert events[-1].response.usage.output_tokens_details.reasoning_tokens == 40


def test_openai_responses_stream_helper_final_response(oai):
    with oai.responses.stream(model="gpt-4o-mini", input="hi", extra_headers=USAGE) as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert final.output_text == deltas
    assert final.usage.input_tokens_details.cached_tokens == 1024


def test_openai_responses_tool_call_stream(oai):
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER_TOOL["input_schema"]}
    with oai.responses.stream(model="gpt-4o", input="weather?", tools=[tool]) as stream:
        final = stream.get_final_response()
    (call,) = final.output
    assert (call.type, call.name, call.arguments) == ("function_call", "get_weather", '{"city": "Paris"}')


async def test_openai_async_responses_stream(srv):
    async with openai.AsyncOpenAI(base_url=srv.openai_base_url, api_key="test") as client:
        async with client.responses.stream(model="gpt-4o-mini", input="hi", extra_headers=USAGE) as stream:
            final = await stream.get_final_response()
    assert final.usage.total_tokens == 1300


def test_openai_legacy_completions_json_and_stream(oai):
    result = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi", max_tokens=5)
    assert result.usage.completion_tokens == 5 and result.choices[0].finish_reason == "length"

    chunks = list(
        oai.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="Say hi",
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=USAGE,
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 1200
    assert all(c.usage is None for c in chunks[:-1])


def test_openai_embeddings_base64_default_and_float(oai):
    result = oai.embeddings.create(model="text-embedding-3-small", input=["abcd" * 3, "xy"])
    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert result.usage.prompt_tokens == math.ceil(14 / 4)
    assert math.isclose(sum(v * v for v in result.data[0].embedding), 1.0, rel_tol=1e-5)

    floats = oai.embeddings.create(
        model="text-embedding-3-small", input="hi", encoding_format="float", dimensions=4, extra_headers=USAGE
    )
    assert len(floats.data[0].embedding) == 4 and floats.usage.prompt_tokens == 1200


def test_azure_openai_uses_deployment_paths_and_responses_path(srv):
    client = openai.AzureOpenAI(azure_endpoint=srv.url, api_key="test", api_version="2024-10-21", max_retries=0)
    chat = client.chat.completions.create(model="prod-4o-mini", messages=MESSAGES, extra_headers=USAGE)
    client.embeddings.create(model="embed-small", input="hello")
    response = client.responses.create(model="prod-4o-mini", input="hi", extra_headers=USAGE)

    assert chat.usage.prompt_tokens == 1200 and response.usage.output_tokens == 100
    paths = [(r.path, r.query.get("api-version")) for r in srv.requests]
    assert paths == [
        ("/openai/deployments/prod-4o-mini/chat/completions", "2024-10-21"),
        ("/openai/deployments/embed-small/embeddings", "2024-10-21"),
        ("/openai/responses", "2024-10-21"),
    ]


def test_azure_deployment_client_and_azure_v1_base_url_route(srv):
    deployed = openai.AzureOpenAI(
        azure_endpoint=srv.url, azure_deployment="dep1", api_key="test", api_version="2025-04-01-preview"
    )
    deployed.responses.create(model="gpt-4o", input="hi")
    v1 = openai.OpenAI(base_url=srv.url + "/openai/v1/", api_key="test")
    v1.responses.create(model="gpt-4o", input="hi")
    v1.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert [r.path for r in srv.requests] == [
        "/openai/responses",
        "/openai/v1/responses",
        "/openai/v1/chat/completions",
    ]


# --- OpenAI errors and retries ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "exc", "status"),
    [
        ("error-400", openai.BadRequestError, 400),
        ("error-500", openai.InternalServerError, 500),
        ("overloaded-529", openai.InternalServerError, 503),
    ],
)
def test_openai_errors_raise_sdk_classes(oai, scenario, exc, status):
    with pytest.raises(exc) as info:
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=_scenario(scenario))
    assert info.value.status_code == status
    assert set(info.value.body) == {"message", "type", "param", "code"}


def test_openai_rate_limit_once_is_retried(srv):
    client = openai.OpenAI(base_url=srv.openai_base_url, api_key="test", max_retries=2)
    headers = _scenario("rate-limit-once", **{scn.HEADER_KEY: "openai-retry"})
    result = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=headers)

    assert result.usage.total_tokens > 0
    assert [r.headers["x-stainless-retry-count"] for r in srv.requests] == ["0", "1"]


def test_openai_stream_error_mid_and_cut(oai):
    received = []
    with pytest.raises(openai.APIError, match="server had an error"):
        for chunk in oai.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=_scenario("stream-error-mid")
        ):
            received.append(chunk.choices[0].delta.content)
    assert len([c for c in received if c]) == scn.CHUNKS_BEFORE_FAILURE

    events = list(
        oai.responses.create(model="gpt-4o", input="hi", stream=True, extra_headers=_scenario("stream-error-mid"))
    )
    assert [e.type for e in events].count("response.output_text.delta") == scn.CHUNKS_BEFORE_FAILURE
    assert events[-1].type == "error" and events[-1].sequence_number == len(events) - 1

    with pytest.raises(openai.APIConnectionError):
        list(
            oai.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=_scenario("stream-cut")
            )
        )
    # the pool recovers: the next call on the same client works
    assert oai.chat.completions.create(model="gpt-4o", messages=MESSAGES).usage.total_tokens > 0


def test_slow_scenario_waits(oai):
    started = time.perf_counter()
    oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=_scenario("slow"))
    assert time.perf_counter() - started >= scn.SLOW_SECONDS


def test_bad_scenario_headers_and_unknown_routes_answer_400_and_404(oai, ant):
    with pytest.raises(openai.BadRequestError, match="x-fake-usage"):
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={scn.HEADER_USAGE: "inptu=3"})
    with pytest.raises(anthropic.BadRequestError, match="unknown scenario"):
        ant.messages.create(model="claude-x", max_tokens=9, messages=MESSAGES, extra_headers=_scenario("nope"))
    with pytest.raises(openai.NotFoundError):
        oai.models.list()


# --- Anthropic --------------------------------------------------------------------------------------


def test_anthropic_messages_json_usage_and_tier(ant, srv):
    message = ant.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=200,
        messages=MESSAGES,
        extra_headers={**ANTHROPIC_USAGE, scn.HEADER_TIER: "priority"},
    )
    u = message.usage
    assert (u.input_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens, u.output_tokens) == (
        12,
        300,
        48,
        77,
    )
    assert (u.cache_creation.ephemeral_5m_input_tokens, u.cache_creation.ephemeral_1h_input_tokens) == (40, 8)
    assert u.service_tier == "priority" and message.model == "claude-sonnet-4-6"
    assert message.stop_reason == "end_turn" and message.content[0].type == "text"
    assert "anthropic-version" in srv.requests[0].headers

    counted = ant.messages.count_tokens(model="claude-sonnet-4-6", messages=MESSAGES)
    assert counted.input_tokens == math.ceil(len(MESSAGES[0]["content"]) / 4)


def test_anthropic_raw_stream_carries_start_and_cumulative_delta_usage(ant):
    events = list(
        ant.messages.create(
            model="claude-haiku-4-5",
            max_tokens=200,
            messages=MESSAGES,
            stream=True,
            extra_headers=ANTHROPIC_USAGE,
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert "ping" not in kinds  # the SDK swallows ping, which proves it was sent as a named event
    start, delta = events[0].message.usage, events[-2].usage
    assert (start.input_tokens, start.cache_read_input_tokens, start.output_tokens) == (12, 300, 1)
    assert (delta.input_tokens, delta.cache_creation_input_tokens, delta.output_tokens) == (12, 48, 77)


def test_anthropic_stream_helper_merges_usage(ant):
    with ant.messages.stream(
        model="claude-sonnet-4-6", max_tokens=200, messages=MESSAGES, extra_headers=ANTHROPIC_USAGE
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.content[0].text == text
    assert (final.usage.output_tokens, final.usage.cache_creation.ephemeral_1h_input_tokens) == (77, 8)


def test_anthropic_tools_stream_input_json_delta(ant):
    with ant.messages.stream(
        model="claude-sonnet-4-6", max_tokens=200, messages=MESSAGES, tools=[WEATHER_TOOL]
    ) as stream:
        kinds = {e.delta.type for e in stream if e.type == "content_block_delta"}
        final = stream.get_final_message()
    assert kinds == {"text_delta", "input_json_delta"}
    assert final.stop_reason == "tool_use"
    assert (final.content[1].name, final.content[1].input) == ("get_weather", {"city": "Paris"})


async def test_anthropic_async_stream_and_beta(srv):
    async with anthropic.AsyncAnthropic(base_url=srv.anthropic_base_url, api_key="test") as client:
        async with client.messages.stream(
            model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES, extra_headers=ANTHROPIC_USAGE
        ) as stream:
            final = await stream.get_final_message()
        beta = await client.beta.messages.create(
            model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES, extra_headers=ANTHROPIC_USAGE
        )
        # anthropic 2.x keeps "beta" internal; older SDKs put `?beta=true` on the URL, which routes the same
        legacy = await client.messages.create(
            model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES, extra_query={"beta": "true"}
        )
    assert final.usage.cache_read_input_tokens == 300 and beta.usage.output_tokens == 77
    assert legacy.usage.output_tokens > 0
    assert [(r.path, r.query) for r in srv.requests[-2:]] == [
        ("/v1/messages", {}),
        ("/v1/messages", {"beta": "true"}),
    ]


@pytest.mark.parametrize(
    ("scenario", "exc", "status", "kind"),
    [
        ("error-400", anthropic.BadRequestError, 400, "invalid_request_error"),
        ("error-500", anthropic.InternalServerError, 500, "api_error"),
        ("overloaded-529", anthropic.OverloadedError, 529, "overloaded_error"),
    ],
)
def test_anthropic_errors_raise_sdk_classes(ant, scenario, exc, status, kind):
    with pytest.raises(exc) as info:
        ant.messages.create(model="claude-x", max_tokens=9, messages=MESSAGES, extra_headers=_scenario(scenario))
    assert info.value.status_code == status
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == kind


def test_anthropic_rate_limit_once_is_retried(srv):
    client = anthropic.Anthropic(base_url=srv.anthropic_base_url, api_key="test", max_retries=2)
    headers = _scenario("rate-limit-once", **{scn.HEADER_KEY: "anthropic-retry"})
    client.messages.create(model="claude-x", max_tokens=9, messages=MESSAGES, extra_headers=headers)
    assert [r.headers["x-stainless-retry-count"] for r in srv.requests] == ["0", "1"]


def test_anthropic_stream_error_mid_and_cut(ant):
    seen = []
    with pytest.raises(anthropic.APIStatusError) as info:
        for event in ant.messages.create(
            model="claude-x",
            max_tokens=50,
            messages=MESSAGES,
            stream=True,
            extra_headers=_scenario("stream-error-mid"),
        ):
            seen.append(event.type)
    assert info.value.body["error"]["type"] == "overloaded_error"
    assert seen.count("content_block_delta") == scn.CHUNKS_BEFORE_FAILURE

    # the SDK does not wrap a broken body: the transport's own error surfaces
    with pytest.raises(httpx2.RemoteProtocolError):
        list(
            ant.messages.create(
                model="claude-x",
                max_tokens=50,
                messages=MESSAGES,
                stream=True,
                extra_headers=_scenario("stream-cut"),
            )
        )


def test_anthropic_batches_end_and_results_iterate(ant, srv):
    requests = [
        {"custom_id": "a", "params": {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": MESSAGES}},
        {"custom_id": "b", "params": {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": MESSAGES}},
    ]
    headers = {**ANTHROPIC_USAGE, scn.HEADER_BATCH_ERRORS: "b"}
    created = ant.messages.batches.create(requests=requests, extra_headers=headers)
    assert created.processing_status == "in_progress"

    batch = ant.messages.batches.retrieve(created.id)
    assert batch.processing_status == "ended" and batch.results_url.startswith(srv.url)
    assert (batch.request_counts.succeeded, batch.request_counts.errored) == (1, 1)

    results = {r.custom_id: r.result for r in ant.messages.batches.results(created.id)}
    assert results["a"].type == "succeeded" and results["a"].message.usage.output_tokens == 77
    assert results["a"].message.usage.service_tier == "batch"
    assert results["b"].type == "errored" and results["b"].error.error.type == "invalid_request_error"


def test_anthropic_vertex_raw_and_stream_predict(srv):
    client = anthropic.AnthropicVertex(
        region="us-east5", project_id="proj", access_token="tok", base_url=srv.url + "/v1", max_retries=0
    )
    message = client.messages.create(model="claude-sonnet-4-6@default", max_tokens=50, messages=MESSAGES)
    with client.messages.stream(
        model="claude-sonnet-4-6@default", max_tokens=50, messages=MESSAGES, extra_headers=ANTHROPIC_USAGE
    ) as stream:
        final = stream.get_final_message()

    assert message.model == "claude-sonnet-4-6@default" and final.usage.cache_read_input_tokens == 300
    assert [r.path.rsplit(":", 1)[1] for r in srv.requests] == ["rawPredict", "streamRawPredict"]


def test_anthropic_bedrock_invoke_with_bearer_key(srv):
    client = anthropic.AnthropicBedrock(api_key="key", aws_region="us-east-1", base_url=srv.url, max_retries=0)
    model = "us.anthropic.claude-sonnet-4-6-v1:0"
    message = client.messages.create(model=model, max_tokens=50, messages=MESSAGES, extra_headers=ANTHROPIC_USAGE)

    assert message.model == model and message.usage.output_tokens == 77
    assert srv.requests[0].path.endswith("/invoke") and "model" not in srv.requests[0].body


# --- lifecycle ----------------------------------------------------------------------------------------


def test_stop_frees_the_port_and_recording_is_thread_safe():
    import threading

    srv = ProviderServer().start()
    client = openai.OpenAI(base_url=srv.openai_base_url, api_key="test", max_retries=0)
    assert srv.url == f"http://127.0.0.1:{srv.port}" and srv.port != 0
    threads = [
        threading.Thread(target=client.chat.completions.create, kwargs={"model": "m", "messages": MESSAGES})
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(srv.requests) == 8
    port = srv.port
    client.close()
    srv.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_main_prints_base_urls_and_stops(capsys):
    from spendmeter.testing.server import main

    assert main(["--port", "0"], serve=lambda: None) == 0
    out = capsys.readouterr().out
    assert "OpenAI base URL:    http://127.0.0.1:" in out and "Anthropic base URL: http://127.0.0.1:" in out
