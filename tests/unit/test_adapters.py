"""Provider payloads (as documented by OpenAI and Anthropic) → disjoint Usage classes."""

from __future__ import annotations

from spendmeter.call import Attribution, Call, Usage
from spendmeter.providers import openai
from spendmeter.providers.anthropic import BATCH_RESULTS, MessageStreamUsage, message_usage
from spendmeter.providers.base import RequestOptions
from spendmeter.providers.openai import (
    ChatStreamUsage,
    ResponsesStreamUsage,
    chat_usage,
    embeddings_usage,
    is_injected_usage_chunk,
    responses_usage,
    with_usage_requested,
)
from spendmeter.recorder import apply_facts


def batch_result_into(item: dict, call: Call) -> None:
    apply_facts(call, BATCH_RESULTS.item_response(item))


def _call() -> Call:
    return Call(provider="openai", operation="chat", request_model="m", attribution=Attribution())


def test_openai_chat_usage_splits_cached_and_keeps_reasoning_inside_output():
    usage = chat_usage(
        {
            "prompt_tokens": 1200,
            "completion_tokens": 100,
            "total_tokens": 1300,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 64, "audio_tokens": 0},
        }
    )
    assert usage == Usage(input=176, cache_read=1024, output=100, reasoning=64, source="reported")
    assert usage.total == 1300


def test_openai_chat_usage_without_details():
    assert chat_usage({"prompt_tokens": 57, "completion_tokens": 17}) == Usage(input=57, output=17, source="reported")


def test_openai_missing_usage_is_missing_not_zero():
    assert chat_usage(None).source == "missing"
    assert responses_usage(None).source == "missing"


def test_openai_responses_usage():
    usage = responses_usage(
        {
            "input_tokens": 18,
            "input_tokens_details": {"cached_tokens": 8},
            "output_tokens": 79,
            "output_tokens_details": {"reasoning_tokens": 40},
            "total_tokens": 97,
        }
    )
    assert usage == Usage(input=10, cache_read=8, output=79, reasoning=40, source="reported")


def test_openai_embeddings_usage():
    assert embeddings_usage({"prompt_tokens": 8, "total_tokens": 8}) == Usage(input=8, source="reported")


def test_anthropic_usage_with_1h_and_5m_cache_writes():
    usage = message_usage(
        {
            "input_tokens": 20,
            "cache_creation_input_tokens": 1163,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 163, "ephemeral_1h_input_tokens": 1000},
            "output_tokens": 300,
            "service_tier": "standard",
        }
    )
    assert usage == Usage(input=20, cache_write_5m=163, cache_write_1h=1000, output=300, source="reported")


def test_anthropic_usage_without_breakdown_counts_writes_as_5m():
    usage = message_usage({"input_tokens": 20, "cache_creation_input_tokens": 1163, "output_tokens": 3})
    assert (usage.cache_write_5m, usage.cache_write_1h) == (1163, 0)


def test_anthropic_stream_merges_start_and_cumulative_delta_latest_wins():
    acc = MessageStreamUsage()
    acc.observe(
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "model": "claude-3-5-sonnet-20240620",
                "usage": {
                    "input_tokens": 20,
                    "cache_read_input_tokens": 1163,
                    "cache_creation_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        }
    )
    acc.observe({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}})
    acc.observe({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 120}})
    acc.observe(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 250, "input_tokens": 20},
        }
    )
    call = _call()
    apply_facts(call, acc.facts())
    assert call.usage == Usage(input=20, cache_read=1163, output=250, source="reported")  # not 251
    assert call.response_model == "claude-3-5-sonnet-20240620"
    assert call.finish_reasons == ("end_turn",)


def test_anthropic_stream_without_any_usage_is_missing():
    acc = MessageStreamUsage()
    call = _call()
    apply_facts(call, acc.facts())
    assert call.usage.source == "missing"


def test_openai_chat_stream_usage_from_final_chunk():
    acc = ChatStreamUsage()
    acc.observe({"id": "c1", "model": "gpt-4o-mini-2024-07-18", "choices": [{"index": 0, "delta": {"content": "a"}}]})
    acc.observe(
        {
            "id": "c1",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "service_tier": "default",
        }
    )
    final = {
        "id": "c1",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3},
    }
    acc.observe(final)
    call = _call()
    apply_facts(call, acc.facts())
    assert call.usage == Usage(input=12, output=3, source="reported")
    assert call.finish_reasons == ("stop",)
    assert call.service_tier == "default"
    assert is_injected_usage_chunk(final)
    assert not is_injected_usage_chunk({"choices": [{"index": 0}], "usage": None})


def test_openai_responses_stream_takes_usage_from_completed_event():
    acc = ResponsesStreamUsage()
    acc.observe({"type": "response.created", "response": {"id": "r1", "model": "gpt-4.1-nano", "usage": None}})
    acc.observe({"type": "response.output_text.delta", "delta": "x"})
    acc.observe(
        {
            "type": "response.completed",
            "response": {
                "id": "r1",
                "model": "gpt-4.1-nano-2025-04-14",
                "status": "completed",
                "service_tier": "default",
                "usage": {"input_tokens": 18, "output_tokens": 79},
            },
        }
    )
    call = _call()
    apply_facts(call, acc.facts())
    assert call.usage == Usage(input=18, output=79, source="reported")
    assert call.response_model == "gpt-4.1-nano-2025-04-14"


def test_usage_injection_only_for_known_hosts_and_never_overrides_the_caller():
    class Url:
        host = "api.openai.com"

    class Client:
        base_url = Url()

    class Resource:
        _client = Client()

    options = RequestOptions(usage_hosts=("api.openai.com", ".openai.azure.com"))

    def wants_usage_injection(resource: object, kwargs: dict) -> bool:
        facts = openai.CHAT.request(resource, kwargs, options)
        sent = facts.send_kwargs
        return sent is not None and (sent.get("stream_options") or sent["extra_body"]["stream_options"]) == {
            "include_usage": True}

    assert wants_usage_injection(Resource(), {"stream": True})
    assert not wants_usage_injection(Resource(), {"stream": False})
    assert not wants_usage_injection(Resource(), {"stream": True, "stream_options": {"include_usage": False}})
    Url.host = "my-llm.internal"
    assert not wants_usage_injection(Resource(), {"stream": True})
    Url.host = "eastus.openai.azure.com"
    assert wants_usage_injection(Resource(), {"stream": True})
    assert not wants_usage_injection(Resource(), {"stream": True, "extra_body": {"stream_options": {
        "include_usage": False}}})
    assert with_usage_requested({"stream": True})["extra_body"] == {"stream_options": {"include_usage": True}}
    assert with_usage_requested({"stream": True, "extra_body": {"a": 1}})["extra_body"] == {
        "a": 1, "stream_options": {"include_usage": True}}
    assert with_usage_requested({"stream": True, "stream_options": {"x": 1}})["stream_options"] == {
        "x": 1,
        "include_usage": True,
    }


def test_batch_results_succeeded_and_errored():
    ok = _call()
    batch_result_into(
        {
            "custom_id": "a",
            "result": {
                "type": "succeeded",
                "message": {
                    "id": "msg",
                    "model": "claude-3-haiku-20240307",
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": 17, "output_tokens": 171},
                },
            },
        },
        ok,
    )
    assert ok.usage == Usage(input=17, output=171, source="reported") and ok.status == "ok"
    bad = _call()
    batch_result_into(
        {
            "custom_id": "b",
            "result": {
                "type": "errored",
                "error": {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}},
            },
        },
        bad,
    )
    assert bad.status == "error" and bad.error_type == "invalid_request_error" and bad.usage.total == 0


def test_anthropic_thinking_tokens_are_reasoning_inside_output():
    usage = message_usage({"input_tokens": 30, "output_tokens": 500, "output_tokens_details": {"thinking_tokens": 420}})
    assert (usage.output, usage.reasoning) == (500, 420)
    acc = MessageStreamUsage()
    acc.observe({"type": "message_start", "message": {"usage": {"input_tokens": 30, "output_tokens": 1}}})
    acc.observe(
        {
            "type": "message_delta",
            "delta": {},
            "usage": {"output_tokens": 500, "output_tokens_details": {"thinking_tokens": 420}},
        }
    )
    call = _call()
    apply_facts(call, acc.facts())
    assert (call.usage.output, call.usage.reasoning) == (500, 420)


def test_openai_responses_stream_error_event_marks_the_call_failed():
    acc = ResponsesStreamUsage()
    acc.observe({"type": "response.created", "response": {"id": "r1", "model": "gpt-4.1-nano", "usage": None}})
    acc.observe({"type": "error", "code": "server_error", "message": "boom"})
    call = _call()
    apply_facts(call, acc.facts())
    assert (call.status, call.error_type, call.usage.source) == ("error", "server_error", "missing")
