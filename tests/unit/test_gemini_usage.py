"""Gemini `usage_metadata` (SDK objects and the API's JSON) → disjoint Usage; model names; embeddings."""

from __future__ import annotations

import pytest

from spendmeter.call import Usage
from spendmeter.providers.google import embed_usage, generate_usage, model_name


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        # the prompt includes its cached part; thoughts are output, apart from the candidates
        ({"prompt_token_count": 1200, "cached_content_token_count": 1024, "candidates_token_count": 36,
          "thoughts_token_count": 64, "total_token_count": 1300},
         Usage(input=176, cache_read=1024, output=100, reasoning=64, source="reported")),
        # the API's camelCase JSON reads the same; tool-use prompt tokens are input
        ({"promptTokenCount": 500, "candidatesTokenCount": 20, "toolUsePromptTokenCount": 40},
         Usage(input=540, output=20, source="reported")),
        # a prompt-only chunk (a stream's first), nothing else yet
        ({"prompt_token_count": 9}, Usage(input=9, source="reported")),
        # a cached count above the prompt (never seen; never negative)
        ({"prompt_token_count": 5, "cached_content_token_count": 9}, Usage(cache_read=5, source="reported")),
        (None, Usage(source="missing")),
    ],
)
def test_generate_usage(meta, expected):
    assert generate_usage(meta) == expected


def test_generate_usage_from_the_sdk_type():
    from google.genai import types

    meta = types.GenerateContentResponseUsageMetadata(
        prompt_token_count=300_000, cached_content_token_count=100_000, candidates_token_count=10,
        thoughts_token_count=5)
    assert generate_usage(meta) == Usage(input=200_000, cache_read=100_000, output=15, reasoning=5, source="reported")


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("gemini-2.5-flash", "gemini-2.5-flash"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("publishers/google/models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash", "gemini-2.0-flash"),
        ("google/gemini-2.5-flash", "gemini-2.5-flash"),
        ("tunedModels/123", "tunedModels/123"),
        (None, None),
    ],
)
def test_model_name(given, name):
    assert model_name(given) == name


def test_embed_usage_prefers_usage_metadata_then_vertex_statistics():
    assert embed_usage({"usage_metadata": {"prompt_token_count": 42}}) == Usage(input=42, source="reported")
    stats = {"embeddings": [{"statistics": {"token_count": 3.0}}, {"statistics": {"token_count": 4.0}}]}
    assert embed_usage(stats) == Usage(input=7, source="reported")
    assert embed_usage({"embeddings": [{"values": [0.1]}]}) == Usage(source="missing")
