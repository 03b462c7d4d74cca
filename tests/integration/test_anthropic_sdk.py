"""anthropic SDK, every call path, sync and async, over HTTP: exactly one Call each, exact tokens."""

from __future__ import annotations

import gc
from decimal import Decimal

import anthropic
import pytest

from spendmeter import attribute, recorder
from spendmeter.call import Usage

MSG = [{"role": "user", "content": "Summarize the attached contract."}]
HEADERS = {"x-fake-usage": "input=20,cache_write=163,cache_write_1h=1000,cached=0,output=300"}
EXPECTED = Usage(input=20, cache_write_5m=163, cache_write_1h=1000, output=300, source="reported")
MODEL = "claude-3-5-sonnet-20240620"


def test_anthropic_messages_create(instrumented, ant):
    with attribute(user="alice", feature="contracts", agent="summarizer", conversation="c-1"):
        message = ant.messages.create(model=MODEL, max_tokens=400, messages=MSG, extra_headers=HEADERS)
    assert type(message) is anthropic.types.Message
    call = instrumented.one()
    assert call.usage == EXPECTED
    assert (call.provider, call.operation, call.model, call.request_max_tokens) == ("anthropic", "messages", MODEL, 400)
    assert call.attribution.agent == "summarizer" and call.attempts == 1
    assert call.priced


async def test_anthropic_messages_create_async(instrumented, aant):
    with attribute(user="bob"):
        await aant.messages.create(model=MODEL, max_tokens=400, messages=MSG, extra_headers=HEADERS)
    call = instrumented.one()
    assert call.usage == EXPECTED and call.attribution.user == "bob"


def test_anthropic_cache_read_priced_exactly(instrumented, ant):
    ant.messages.create(
        model=MODEL, max_tokens=300, messages=MSG, extra_headers={"x-fake-usage": "input=20,cached=1163,output=250"}
    )
    call = instrumented.one()
    assert call.usage == Usage(input=20, cache_read=1163, output=250, source="reported")
    # 20 x 3 + 1163 x 0.30 + 250 x 15 per 1M
    assert call.cost.total == (Decimal(20) * 3 + Decimal(1163) * Decimal("0.30") + Decimal(250) * 15) / 1_000_000


def test_anthropic_create_stream_merges_start_and_delta(instrumented, ant):
    stream = ant.messages.create(model=MODEL, max_tokens=400, messages=MSG, stream=True, extra_headers=HEADERS)
    assert isinstance(stream, anthropic.Stream)
    events = [e.type for e in stream]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    call = instrumented.one()
    assert call.usage == EXPECTED and call.stream


async def test_anthropic_create_stream_async(instrumented, aant):
    stream = await aant.messages.create(model=MODEL, max_tokens=400, messages=MSG, stream=True, extra_headers=HEADERS)
    async for _ in stream:
        pass
    assert instrumented.one().usage == EXPECTED


def test_anthropic_stream_manager_text_stream_and_final_message(instrumented, ant):
    with attribute(user="carol"):
        manager = ant.messages.stream(model=MODEL, max_tokens=400, messages=MSG, extra_headers=HEADERS)
    assert instrumented.calls == []  # nothing sent before the manager is entered
    with manager as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.usage.output_tokens == 300
    call = instrumented.one()
    assert call.usage == EXPECTED and call.attribution.user == "carol"  # snapshot taken at .stream()


def test_anthropic_stream_manager_event_iteration(instrumented, ant):
    with ant.messages.stream(model=MODEL, max_tokens=400, messages=MSG, extra_headers=HEADERS) as stream:
        kinds = [event.type for event in stream]
    assert "text" in kinds and kinds[-1] == "message_stop"
    assert instrumented.one().usage == EXPECTED


def test_anthropic_stream_manager_never_entered_records_nothing(instrumented, ant):
    ant.messages.stream(model=MODEL, max_tokens=400, messages=MSG)
    gc.collect()
    assert instrumented.calls == []


async def test_anthropic_stream_manager_async(instrumented, aant):
    async with aant.messages.stream(model=MODEL, max_tokens=400, messages=MSG, extra_headers=HEADERS) as stream:
        final = await stream.get_final_message()
    assert final.usage.input_tokens == 20
    assert instrumented.one().usage == EXPECTED


def test_anthropic_beta_messages(instrumented, ant):
    ant.beta.messages.create(model=MODEL, max_tokens=100, messages=MSG, extra_headers=HEADERS)
    with ant.beta.messages.stream(model=MODEL, max_tokens=100, messages=MSG, extra_headers=HEADERS) as stream:
        stream.get_final_message()
    assert [c.usage for c in instrumented.calls] == [EXPECTED, EXPECTED]


def test_anthropic_tool_use_stream(instrumented, ant):
    tools = [
        {
            "name": "get_order",
            "description": "Look up an order",
            "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
        }
    ]
    with ant.messages.stream(
        model=MODEL,
        max_tokens=100,
        messages=MSG,
        tools=tools,
        extra_headers={**HEADERS, "x-fake-scenario": "tool-call"},
    ) as stream:
        final = stream.get_final_message()
    assert any(block.type == "tool_use" for block in final.content)
    call = instrumented.one()
    assert call.usage == EXPECTED and call.finish_reasons == ("tool_use",)


def test_anthropic_metadata_user_id_attributes_the_call(instrumented, ant):
    ant.messages.create(model=MODEL, max_tokens=10, messages=MSG, metadata={"user_id": "u-55"})
    assert instrumented.one().attribution.user == "u-55"


def test_anthropic_batch_results_are_calls_at_batch_rates(instrumented, ant):
    batch = ant.messages.batches.create(
        requests=[
            {"custom_id": f"r{i}", "params": {"model": "claude-3-haiku-20240307", "max_tokens": 200, "messages": MSG}}
            for i in range(3)
        ],
        extra_headers={"x-fake-usage": "input=17,output=171"},
    )
    results = list(ant.messages.batches.results(batch.id))
    assert len(results) == 3
    assert len(instrumented.calls) == 3
    call = instrumented.calls[0]
    assert call.batch and call.usage == Usage(input=17, output=171, source="reported")
    # half of the standard 17 x 0.25 + 171 x 1.25 per 1M
    assert call.cost.total == (Decimal(17) * Decimal("0.25") + Decimal(171) * Decimal("1.25")) / 2_000_000


def test_anthropic_overloaded_error(instrumented, ant):
    with pytest.raises(anthropic.APIStatusError) as info:
        ant.with_options(max_retries=0).messages.create(
            model=MODEL, max_tokens=10, messages=MSG, extra_headers={"x-fake-scenario": "overloaded-529"}
        )
    assert info.value.status_code == 529
    call = instrumented.one()
    assert call.status == "error" and call.error_type == type(info.value).__name__


def test_anthropic_retry_counts_attempts(instrumented, ant):
    ant.messages.create(
        model=MODEL,
        max_tokens=10,
        messages=MSG,
        extra_headers={**HEADERS, "x-fake-scenario": "rate-limit-once", "x-fake-key": "k-ant"},
    )
    call = instrumented.one()
    assert call.attempts == 2 and call.usage == EXPECTED


def test_anthropic_stream_closed_early_by_caller(instrumented, ant):
    stream = ant.messages.create(model=MODEL, max_tokens=400, messages=MSG, stream=True, extra_headers=HEADERS)
    for i, _ in enumerate(stream):
        if i == 1:
            break
    stream.close()
    call = instrumented.one()
    # message_start was seen: its usage is kept (input known, output so far)
    assert call.end_reason == "closed_early" and call.usage.input == 20 and call.usage.source == "reported"


def test_anthropic_stream_error_mid_stream(instrumented, ant):
    stream = ant.messages.create(
        model=MODEL,
        max_tokens=400,
        messages=MSG,
        stream=True,
        extra_headers={**HEADERS, "x-fake-scenario": "stream-error-mid"},
    )
    with pytest.raises(anthropic.APIError):
        for _ in stream:
            pass
    call = instrumented.one()
    assert call.status == "error" and call.usage.input == 20  # billed input is kept


def test_anthropic_stream_garbage_collected(instrumented, ant, pipeline):
    stream = ant.messages.create(model=MODEL, max_tokens=400, messages=MSG, stream=True, extra_headers=HEADERS)
    next(iter(stream))
    del stream
    gc.collect()
    recorder.drain()
    assert instrumented.one().end_reason == "abandoned"


def test_anthropic_vertex_client(instrumented, provider_server):
    client = anthropic.AnthropicVertex(
        region="us-east5", project_id="p", access_token="t", base_url=f"{provider_server.url}/v1"
    )
    client.messages.create(
        model="claude-3-haiku@20240307",
        max_tokens=10,
        messages=MSG,
        extra_headers={"x-fake-usage": "input=17,output=171"},
    )
    call = instrumented.one()
    assert call.provider == "gcp.vertex_ai" and call.usage.output == 171
    assert call.priced


def test_anthropic_bedrock_client(instrumented, provider_server):
    client = anthropic.AnthropicBedrock(
        api_key="key", aws_region="us-east-1", base_url=provider_server.url, max_retries=0
    )
    client.messages.create(
        model="anthropic.claude-3-haiku-20240307-v1:0",
        max_tokens=10,
        messages=MSG,
        extra_headers={"x-fake-usage": "input=17,output=171"},
    )
    call = instrumented.one()
    assert (call.provider, call.usage.input, call.usage.output) == ("aws.bedrock", 17, 171)
    # priced as the Anthropic model it is: 17 x 0.25 + 171 x 1.25 per 1M
    assert call.cost.total == (Decimal(17) * Decimal("0.25") + Decimal(171) * Decimal("1.25")) / 1_000_000
