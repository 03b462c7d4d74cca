"""Payload dicts -> facts: OpenAI cache writes, OpenRouter's billed cost, Responses tool calls, Anthropic
`usage.iterations` and `server_tool_use` (plain and streamed), and the hidden `usage: null` of a stream."""

from __future__ import annotations

from decimal import Decimal

from openai.types.chat import ChatCompletionChunk

from spendmeter.call import Step, Usage
from spendmeter.providers.anthropic import MESSAGES
from spendmeter.providers.openai import CHAT, RESPONSES, chat_usage, hide_injected_usage, responses_usage


def test_openai_chat_cache_writes_are_their_own_class():
    usage = {"prompt_tokens": 3000, "completion_tokens": 50,
             "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 1500}}
    assert chat_usage(usage) == Usage(input=500, cache_read=1000, cache_write_5m=1500, output=50, source="reported")


def test_openai_responses_cache_writes_and_reasoning():
    usage = {"input_tokens": 2000, "output_tokens": 300, "output_tokens_details": {"reasoning_tokens": 200},
             "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 2000}}
    assert responses_usage(usage) == Usage(input=0, cache_write_5m=2000, output=300, reasoning=200,
                                           source="reported")


def test_cache_writes_never_exceed_the_prompt():
    usage = {"prompt_tokens": 100, "prompt_tokens_details": {"cached_tokens": 80, "cache_write_tokens": 90}}
    u = chat_usage(usage)
    assert (u.input, u.cache_read, u.cache_write) == (0, 80, 20)


def test_openrouter_billed_cost_keeps_the_json_digits():
    facts = CHAT.response({"model": "openai/gpt-4o-mini", "choices": [],
                           "usage": {"prompt_tokens": 10, "completion_tokens": 2, "cost": 0.0000495}})
    assert facts.billed_cost == Decimal("0.0000495") and facts.billed_cost_source == "response usage.cost"
    assert CHAT.response({"usage": {"prompt_tokens": 1, "cost": True}}).billed_cost is None
    byok = {"prompt_tokens": 10, "cost": 0.00001, "is_byok": True,
            "cost_details": {"upstream_inference_cost": 0.0002}}
    assert CHAT.response({"usage": byok}).billed_cost == Decimal("0.00021")  # fee + what the provider billed


def test_openai_moonshot_usage_inside_the_last_choice():
    acc = CHAT.accumulator()
    acc.observe({"id": "c", "model": "kimi", "choices": [{"index": 0, "delta": {"content": "x"}}]})
    acc.observe({"id": "c", "model": "kimi", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop",
                                                          "usage": {"prompt_tokens": 7, "completion_tokens": 3}}]})
    assert acc.facts().usage == Usage(input=7, output=3, source="reported")


def test_responses_tool_calls_counted():
    response = {"model": "gpt-5", "status": "completed", "usage": {"input_tokens": 10, "output_tokens": 5},
                "output": [{"type": "web_search_call", "action": {"type": "search"}},
                           {"type": "web_search_call", "action": {"type": "open_page"}},  # not a billed search
                           {"type": "web_search_call"}, {"type": "file_search_call"}, {"type": "message"}]}
    assert RESPONSES.response(response).tools == (("file_search", 1), ("web_search", 2))
    reported = {**response, "tool_usage": {"web_search": {"num_requests": 5}, "image_gen": {}}}
    assert dict(RESPONSES.response(reported).tools)["web_search"] == 5  # the billable count wins


def test_hide_injected_usage_unsets_the_null_usage_the_server_added():
    chunk = ChatCompletionChunk.model_validate({
        "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "usage": None,
        "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]})
    assert "usage" in chunk.model_dump(exclude_unset=True)
    assert hide_injected_usage(chunk) is False
    assert "usage" not in chunk.model_dump(exclude_unset=True) and '"usage"' not in chunk.to_json()
    final = ChatCompletionChunk.model_validate({"id": "c", "object": "chat.completion.chunk", "created": 1,
                                                "model": "m", "choices": [],
                                                "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                                          "total_tokens": 2}})
    assert hide_injected_usage(final) is True


ITERATED = {
    "input_tokens": 23000, "output_tokens": 1000, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
    "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0},
    "iterations": [
        {"type": "compaction", "input_tokens": 180000, "output_tokens": 3500, "cache_read_input_tokens": 0,
         "cache_creation_input_tokens": 0},
        {"type": "advisor_message", "model": "claude-opus-4-5", "input_tokens": 5000, "output_tokens": 200,
         "cache_read_input_tokens": 100, "cache_creation_input_tokens": 300,
         "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 300}},
        {"type": "message", "input_tokens": 23000, "output_tokens": 1000, "cache_read_input_tokens": 0,
         "cache_creation_input_tokens": 0},
    ],
}


def test_anthropic_every_iteration_counts_at_its_own_model():
    facts = MESSAGES.response({"model": "claude-sonnet-4-5", "id": "m", "usage": ITERATED})
    assert facts.steps == (
        Step("claude-sonnet-4-5", Usage(input=180000, output=3500, source="reported"), "compaction"),
        Step("claude-opus-4-5", Usage(input=5000, cache_read=100, cache_write_1h=300, output=200,
                                      source="reported"), "advisor_message"),
        Step("claude-sonnet-4-5", Usage(input=23000, output=1000, source="reported"), "message"),
    )
    assert facts.usage == Usage(input=208000, cache_read=100, cache_write_1h=300, output=4700, source="reported")
    assert facts.tools == (("web_search", 2),)


def test_anthropic_stream_iterations_from_the_final_delta():
    acc = MESSAGES.accumulator()
    acc.observe({"type": "message_start", "message": {"model": "claude-sonnet-4-5", "id": "m",
                                                       "usage": {"input_tokens": 23000, "output_tokens": 1}}})
    acc.observe({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": ITERATED})
    facts = acc.facts()
    assert facts.usage.total == 180000 + 3500 + 5000 + 100 + 300 + 200 + 23000 + 1000
    assert [s.model for s in facts.steps] == ["claude-sonnet-4-5", "claude-opus-4-5", "claude-sonnet-4-5"]
    assert facts.tools == (("web_search", 2),)


def test_anthropic_without_iterations_is_unchanged():
    facts = MESSAGES.response({"model": "claude-sonnet-4-5", "usage": {"input_tokens": 5, "output_tokens": 2}})
    assert facts.steps == () and facts.tools == ()
    assert facts.usage == Usage(input=5, output=2, source="reported")
