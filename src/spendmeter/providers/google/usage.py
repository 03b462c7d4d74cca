"""Google Gen AI `usage_metadata` → disjoint `Usage` classes.

Gemini counts the prompt with its cached part inside (`prompt_token_count` includes
`cached_content_token_count`), keeps the model's thinking apart from the answer (`thoughts_token_count` is not
in `candidates_token_count`, and is billed as output), and reports the prompt tokens of tool results apart
(`tool_use_prompt_token_count`, billed as input). So: input = prompt − cached + tool-use prompt;
cache_read = cached; output = candidates + thoughts; reasoning = thoughts. No cache writes: Gemini bills
cached-content storage by the hour through the caches API, not per call.
"""

from __future__ import annotations

from typing import Any

from spendmeter.call import Usage
from spendmeter.providers.fields import get, get_int


def generate_usage(meta: Any) -> Usage:
    """`GenerateContentResponseUsageMetadata` (or its JSON, camelCase or snake_case) → `Usage`."""
    if meta is None:
        return Usage(source="missing")
    prompt = _int(meta, "prompt_token_count", "promptTokenCount")
    cached = min(_int(meta, "cached_content_token_count", "cachedContentTokenCount"), prompt)
    tool_prompt = _int(meta, "tool_use_prompt_token_count", "toolUsePromptTokenCount")
    thoughts = _int(meta, "thoughts_token_count", "thoughtsTokenCount")
    candidates = _int(meta, "candidates_token_count", "candidatesTokenCount")
    return Usage(
        input=prompt - cached + tool_prompt,
        cache_read=cached,
        output=candidates + thoughts,
        reasoning=thoughts,
        source="reported",
    )


def embed_usage(response: Any) -> Usage:
    """`EmbedContentResponse`: `usage_metadata.prompt_token_count`, else Vertex's per-embedding
    `statistics.token_count`, else missing (a character-billed legacy model says only characters)."""
    meta = get(response, "usage_metadata")
    if meta is not None and get(meta, "prompt_token_count") is not None:
        return Usage(input=get_int(meta, "prompt_token_count"), source="reported")
    counts = [get(get(e, "statistics"), "token_count") for e in get(response, "embeddings") or ()]
    if counts and all(isinstance(c, int | float) for c in counts):
        return Usage(input=int(sum(counts)), source="reported")
    return Usage(source="missing")


def _int(obj: Any, *names: str) -> int:
    for name in names:
        value = get_int(obj, name)
        if value:
            return value
    return 0
