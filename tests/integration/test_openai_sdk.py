"""openai SDK, every call path, sync and async, over HTTP: one Call each, exact tokens, SDK objects untouched."""

from __future__ import annotations

import gc
from decimal import Decimal

import openai
import pytest

from spendmeter import attribute, recorder
from spendmeter.call import Usage

MSG = [{"role": "user", "content": "Where is my order #1234?"}]
USAGE = {"x-fake-usage": "input=176,cached=1024,output=100,reasoning=64"}
EXPECTED = Usage(input=176, cache_read=1024, output=100, reasoning=64, source="reported")


def test_openai_chat_create(instrumented, oai):
    with attribute(user="alice", feature="support", agent="router", conversation="c-42"):
        result = oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)
    assert type(result) is openai.types.chat.ChatCompletion
    call = instrumented.one()
    assert call.usage == EXPECTED
    assert (call.provider, call.operation, call.request_model) == ("openai", "chat", "gpt-4o-mini")
    assert call.response_model == result.model
    assert (call.attribution.user, call.attribution.feature, call.attribution.agent, call.attribution.conversation) == (
        "alice",
        "support",
        "router",
        "c-42",
    )
    assert (call.status, call.attempts, call.stream, call.end_reason) == ("ok", 1, False, "completed")
    assert call.priced and call.cost.total > 0


async def test_openai_chat_create_async(instrumented, aoai):
    with attribute(user="bob"):
        result = await aoai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)
    assert result.usage.prompt_tokens == 1200
    call = instrumented.one()
    assert call.usage == EXPECTED and call.attribution.user == "bob"


def test_openai_priority_tier_comes_from_the_response(instrumented, oai):
    oai.chat.completions.create(
        model="gpt-5",
        messages=MSG,
        service_tier="priority",
        extra_headers={"x-fake-usage": "input=8,output=82,reasoning=64"},
    )
    call = instrumented.one()
    assert call.service_tier == "priority"
    assert call.cost.total == Decimal("0.00166")  # 8 x 2.50 + 82 x 20.00 per 1M at the priority tier


def test_openai_chat_stream_hides_the_usage_chunk_we_asked_for(instrumented, oai, provider_server):
    stream = oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True, extra_headers=USAGE)
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    assert all(c.choices for c in chunks), "the caller saw a usage-only chunk it never asked for"
    assert provider_server.requests[-1].body["stream_options"] == {"include_usage": True}
    call = instrumented.one()
    assert call.usage == EXPECTED and call.stream and call.end_reason == "completed"


def test_openai_chat_stream_usage_chunk_kept_when_caller_asked(instrumented, oai):
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=MSG, stream=True, extra_headers=USAGE, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 1200
    assert instrumented.one().usage == EXPECTED


def test_openai_chat_stream_without_usage_is_missing_not_invented(instrumented, oai, pipeline):
    pipeline.set(usage_hosts=())  # an endpoint not known to accept stream_options
    list(oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True, extra_headers=USAGE))
    call = instrumented.one()
    assert call.usage.source == "missing" and call.cost is None


async def test_openai_chat_stream_async(instrumented, aoai):
    stream = await aoai.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True, extra_headers=USAGE)
    assert isinstance(stream, openai.AsyncStream)
    chunks = [c async for c in stream]
    assert chunks and all(c.choices for c in chunks)
    assert instrumented.one().usage == EXPECTED


def test_openai_chat_stream_helper(instrumented, oai):
    with oai.chat.completions.stream(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content
    assert instrumented.one().usage == EXPECTED


async def test_openai_chat_stream_helper_async(instrumented, aoai):
    async with aoai.chat.completions.stream(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE) as stream:
        final = await stream.get_final_completion()
    assert final.choices
    assert instrumented.one().usage == EXPECTED


def test_openai_chat_parse(instrumented, oai):
    result = oai.chat.completions.parse(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)
    assert result.choices[0].message.content
    assert instrumented.one().usage == EXPECTED


def test_openai_responses_create_and_stream(instrumented, oai):
    headers = {"x-fake-usage": "input=10,cached=8,output=79,reasoning=40"}
    expected = Usage(input=10, cache_read=8, output=79, reasoning=40, source="reported")
    result = oai.responses.create(model="gpt-4.1-nano", input="Summarize this ticket", extra_headers=headers)
    assert result.output_text
    events = list(oai.responses.create(model="gpt-4.1-nano", input="hi", stream=True, extra_headers=headers))
    assert events[-1].type == "response.completed"
    with oai.responses.stream(model="gpt-4.1-nano", input="hi", extra_headers=headers) as stream:
        final = stream.get_final_response()
    assert final.usage.output_tokens == 79
    oai.responses.parse(model="gpt-4.1-nano", input="hi", extra_headers=headers)
    assert [c.operation for c in instrumented.calls] == ["responses"] * 4
    assert all(c.usage == expected for c in instrumented.calls)
    assert [c.stream for c in instrumented.calls] == [False, True, True, False]


async def test_openai_responses_async(instrumented, aoai):
    headers = {"x-fake-usage": "input=18,output=79"}
    await aoai.responses.create(model="gpt-4.1-nano", input="hi", extra_headers=headers)
    stream = await aoai.responses.create(model="gpt-4.1-nano", input="hi", stream=True, extra_headers=headers)
    async for _ in stream:
        pass
    assert [c.usage.output for c in instrumented.calls] == [79, 79]


def test_openai_embeddings(instrumented, oai):
    result = oai.embeddings.create(
        model="text-embedding-ada-002", input="hello world", extra_headers={"x-fake-usage": "input=8"}
    )
    assert result.data[0].embedding
    call = instrumented.one()
    assert (call.operation, call.usage.input, call.usage.source) == ("embeddings", 8, "reported")
    assert call.cost.total == Decimal("0.0000008")


async def test_openai_embeddings_async(instrumented, aoai):
    await aoai.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], extra_headers={"x-fake-usage": "input=4"}
    )
    assert instrumented.one().usage.input == 4


def test_openai_legacy_completions_plain_and_stream(instrumented, oai):
    headers = {"x-fake-usage": "input=10,output=16"}
    oai.completions.create(model="davinci-002", prompt="Say this is a test", extra_headers=headers)
    list(oai.completions.create(model="davinci-002", prompt="x", stream=True, extra_headers=headers))
    assert [(c.operation, c.usage.input, c.usage.output) for c in instrumented.calls] == [
        ("text_completion", 10, 16),
        ("text_completion", 10, 16),
    ]


async def test_openai_legacy_completions_async(instrumented, aoai):
    await aoai.completions.create(model="davinci-002", prompt="x", extra_headers={"x-fake-usage": "input=10,output=16"})
    assert instrumented.one().usage.output == 16


def test_openai_with_raw_response(instrumented, oai):
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)
    assert raw.headers.get("content-type", "").startswith("application/json")
    assert raw.parse().usage.prompt_tokens == 1200
    assert instrumented.one().usage == EXPECTED


def test_openai_with_streaming_response(instrumented, oai):
    with oai.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MSG, extra_headers=USAGE
    ) as response:
        parsed = response.parse()
    assert parsed.usage.completion_tokens == 100
    assert instrumented.one().usage == EXPECTED


async def test_openai_with_raw_response_async(instrumented, aoai):
    raw = await aoai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)
    assert raw.parse().usage.prompt_tokens == 1200
    assert instrumented.one().usage == EXPECTED


def test_azure_openai_keeps_deployment_apart_from_model(instrumented, provider_server):
    client = openai.AzureOpenAI(azure_endpoint=provider_server.url, api_key="k", api_version="2024-10-21")
    result = client.chat.completions.create(model="my-gpt4o-deployment", messages=MSG, extra_headers=USAGE)
    call = instrumented.one()
    assert call.provider == "azure.ai.openai"
    assert call.deployment == "my-gpt4o-deployment"
    assert call.response_model == result.model


def test_openai_user_taken_from_request_when_not_attributed(instrumented, oai):
    oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, user="user-77", extra_headers=USAGE)
    oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, safety_identifier="sid-9", extra_headers=USAGE)
    with attribute(user="explicit"):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, user="user-77", extra_headers=USAGE)
    assert [c.attribution.user for c in instrumented.calls] == ["user-77", "sid-9", "explicit"]


def test_openai_server_error_is_reraised_and_recorded(instrumented, oai):
    with pytest.raises(openai.InternalServerError):
        oai.with_options(max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=MSG, extra_headers={"x-fake-scenario": "error-500"}
        )
    call = instrumented.one()
    assert (call.status, call.error_type, call.usage.source) == ("error", "InternalServerError", "missing")


def test_openai_bad_request_is_reraised_untouched(instrumented, oai):
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers={"x-fake-scenario": "error-400"})
    assert info.value.status_code == 400
    assert instrumented.one().error_type == "BadRequestError"


def test_openai_retry_after_429_counts_two_attempts_one_call(instrumented, oai, provider_server):
    oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=MSG,
        extra_headers={**USAGE, "x-fake-scenario": "rate-limit-once", "x-fake-key": "k-oai"},
    )
    call = instrumented.one()
    assert call.attempts == 2 and call.status == "ok" and call.usage == EXPECTED
    assert [r.headers.get("x-stainless-retry-count") for r in provider_server.requests] == ["0", "1"]


def test_openai_chat_stream_closed_early_by_caller(instrumented, oai):
    stream = oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True, extra_headers=USAGE)
    for i, _ in enumerate(stream):
        if i == 1:
            break
    stream.close()
    call = instrumented.one()
    assert call.end_reason == "closed_early" and call.usage.source == "missing"


def test_openai_chat_stream_error_mid_stream(instrumented, oai):
    stream = oai.chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True, extra_headers={"x-fake-scenario": "stream-error-mid"}
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    assert instrumented.one().status == "error"


def test_openai_chat_stream_never_iterated_then_garbage_collected(instrumented, oai, pipeline):
    stream = oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True, extra_headers=USAGE)
    del stream
    gc.collect()
    recorder.drain()
    assert instrumented.one().end_reason == "abandoned"


def test_openai_uninstrument_restores_methods(instrumented, oai):
    from spendmeter.instrumentation import patches

    patches.uninstrument()
    oai.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert instrumented.calls == []
    patches.instrument()
    patches.instrument()  # idempotent: still one call per call
    oai.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert len(instrumented.calls) == 1


def test_openai_tool_call_in_a_stream(instrumented, oai):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_order",
                "description": "Look up an order",
                "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
            },
        }
    ]
    with oai.chat.completions.stream(
        model="gpt-4o-mini", messages=MSG, tools=tools, extra_headers={**USAGE, "x-fake-scenario": "tool-call"}
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.name == "get_order"
    call = instrumented.one()
    assert call.usage == EXPECTED and call.finish_reasons == ("tool_calls",)
