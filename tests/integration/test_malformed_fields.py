"""Malformed provider fields never drop a call: it is counted once, its usage corrected and flagged
(`usage="sanitized"`), never a negative or invented cost. The real SDKs parse each response; the malformed
bodies come from an in-process transport (the fake provider writes only well-formed numbers)."""

from __future__ import annotations

import json

import anthropic
import httpx2
import openai
import pytest
from prometheus_client import CollectorRegistry

import spendmeter
from spendmeter.call import Cost
from spendmeter.testing import CollectingSink

MSG = [{"role": "user", "content": "hi"}]


def _sse(events: list[tuple[str, dict]]) -> bytes:
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


def _anthropic_stream(model: object, output_tokens: object) -> bytes:
    return _sse([
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "ok"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": output_tokens}}),
        ("message_stop", {"type": "message_stop"}),
    ])  # fmt: skip


def _chat(usage: dict) -> bytes:
    return json.dumps({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
        "usage": usage,
    }).encode()  # fmt: skip


@pytest.fixture
def wired(pipeline):
    sink = CollectingSink()
    registry = CollectorRegistry()
    spendmeter.add_sink(sink)
    spendmeter.init(serve_metrics=False, registry=registry)
    yield registry, sink
    spendmeter.shutdown()
    spendmeter.remove_sink(sink)


def _requests(registry: CollectorRegistry, **labels: str) -> float:
    return sum(
        s.value
        for m in registry.collect()
        for s in m.samples
        if s.name == "llm_requests_total" and all(s.labels.get(k) == v for k, v in labels.items())
    )


@pytest.mark.parametrize(("model", "output_tokens"), [(123, 5), ("claude-3-haiku-20240307", -5), (None, 10**19)])
def test_an_anthropic_stream_with_malformed_fields_is_counted_once(wired, model, output_tokens):
    registry, sink = wired
    body = _anthropic_stream(model, output_tokens)
    transport = httpx2.MockTransport(
        lambda request: httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})
    )
    client = anthropic.Anthropic(api_key="k", max_retries=0, http_client=httpx2.Client(transport=transport))
    events = list(client.messages.create(model="claude-3-haiku-20240307", max_tokens=50, messages=MSG, stream=True))
    assert [e.type for e in events][-1] == "message_stop"  # the caller got every event
    call = sink.one()
    assert _requests(registry) == 1
    assert call.usage.output >= 0 and call.usage.input == 12
    assert not isinstance(call.cost, Cost) or call.cost.total >= 0  # unpriced (unknown model) is fine, $<0 never
    if output_tokens != 5:
        assert call.usage.source == "sanitized" and _requests(registry, usage="sanitized") == 1
    assert isinstance(call.model, str)


@pytest.mark.parametrize(
    ("usage", "expected", "source"),
    [
        ({"prompt_tokens": 5.0, "completion_tokens": "10"}, (5, 10), "reported"),  # odd types, same numbers
        ({"prompt_tokens": 10**19, "completion_tokens": 3}, (0, 3), "sanitized"),
        ({"prompt_tokens": 7, "completion_tokens": -2}, (7, 0), "sanitized"),
    ],
)
def test_openai_usage_in_odd_shapes_is_read_or_flagged(wired, usage, expected, source):
    registry, sink = wired
    body = _chat(usage)
    transport = httpx2.MockTransport(
        lambda request: httpx2.Response(200, content=body, headers={"content-type": "application/json"})
    )
    client = openai.OpenAI(api_key="k", max_retries=0, http_client=httpx2.Client(transport=transport))
    result = client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert result.choices[0].message.content == "ok"
    call = sink.one()
    assert (call.usage.input, call.usage.output) == expected and call.usage.source == source
    assert call.usage.reasoning <= call.usage.output
    assert call.cost is not None and call.cost.total >= 0  # priced from the corrected numbers, never negative
    assert _requests(registry, usage=source) == 1
