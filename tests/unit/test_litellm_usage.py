"""LiteLLM's OpenAI-shaped usage (with Anthropic cache tokens folded into prompt_tokens) → disjoint Usage;
provider ids from LiteLLM's routes."""

from __future__ import annotations

import pytest

from spendmeter.call import Usage
from spendmeter.providers.base import RequestOptions
from spendmeter.providers.litellm import chat_usage, is_usage_chunk, provider_of, responses_usage


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        # openai/: prompt includes cached
        ({"prompt_tokens": 1200, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 1024},
          "completion_tokens_details": {"reasoning_tokens": 64}},
         Usage(input=176, cache_read=1024, output=100, reasoning=64, source="reported")),
        # anthropic/: reads and writes folded in, with the TTL split LiteLLM keeps
        ({"prompt_tokens": 1700, "completion_tokens": 100, "cache_creation_input_tokens": 500,
          "cache_read_input_tokens": 1024,
          "prompt_tokens_details": {"cached_tokens": 1024, "cache_creation_tokens": 500,
                                    "cache_creation_token_details": {"ephemeral_5m_input_tokens": 300,
                                                                     "ephemeral_1h_input_tokens": 200}}},
         Usage(input=176, cache_read=1024, cache_write_5m=300, cache_write_1h=200, output=100, source="reported")),
        # only the top-level Anthropic fields
        ({"prompt_tokens": 30, "completion_tokens": 1, "cache_creation_input_tokens": 10,
          "cache_read_input_tokens": 5},
         Usage(input=15, cache_read=5, cache_write_5m=10, output=1, source="reported")),
        # numbers that do not add up never make a class negative
        ({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 5}},
         Usage(input=0, cache_read=8, cache_write_5m=2, source="reported")),
        (None, Usage(source="missing")),
    ],
)
def test_chat_usage(usage, expected):
    assert chat_usage(usage) == expected


def test_chat_usage_keeps_the_source_it_is_given():
    assert chat_usage({"prompt_tokens": 15, "completion_tokens": 14}, "estimated").source == "estimated"


def test_responses_usage_splits_the_same_way():
    usage = {"input_tokens": 1700, "output_tokens": 100,
             "input_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 500},
             "output_tokens_details": {"reasoning_tokens": 40}}
    assert responses_usage(usage) == Usage(input=176, cache_read=1024, cache_write_5m=500, output=100, reasoning=40,
                                           source="reported")


@pytest.mark.parametrize(
    ("route", "api_base", "provider"),
    [
        ("deepseek", None, "deepseek"),
        ("deepseek", "http://127.0.0.1:9/v1", "deepseek"),  # a named route wins over the endpoint
        ("anthropic", None, "anthropic"),
        ("azure", "https://x.openai.azure.com", "azure.ai.openai"),
        ("vertex_ai", None, "gcp.vertex_ai"),
        ("gemini", None, "gcp.gemini"),
        ("xai", None, "x_ai"),
        ("together_ai", None, "together"),
        ("openai", None, "openai"),
        ("openai", "https://api.groq.com/openai/v1", "groq"),  # a generic route: the endpoint says who
        ("hosted_vllm", "http://127.0.0.1:8000/v1", "vllm"),  # the user's mapping of a local server
    ],
)
def test_provider_of(route, api_base, provider):
    options = RequestOptions(providers={"127.0.0.1:8000": "vllm"})
    assert provider_of(route, api_base, options) == provider


def test_usage_chunk_is_the_one_without_choices():
    assert is_usage_chunk({"choices": [], "usage": {"prompt_tokens": 1}})
    assert not is_usage_chunk({"choices": [{"delta": {}}], "usage": {"prompt_tokens": 1}})
    assert not is_usage_chunk({"choices": [], "usage": None})
