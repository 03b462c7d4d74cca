"""OpenAI usage objects (or their JSON) → disjoint `Usage` classes.

input = prompt − cached; cache_read = cached; output includes reasoning; reasoning is reported apart and never
added twice. Pure functions over SDK objects *or* plain dicts (raw responses are read as JSON).
"""

from __future__ import annotations

from typing import Any

from spendmeter.call import Usage
from spendmeter.providers.fields import get_int, path


def chat_usage(usage: Any) -> Usage:
    """Chat completions and legacy completions: prompt_tokens / completion_tokens (+ details)."""
    if usage is None:
        return Usage(source="missing")
    prompt = get_int(usage, "prompt_tokens")
    cached = min(get_int(path(usage, "prompt_tokens_details"), "cached_tokens"), prompt)
    output = get_int(usage, "completion_tokens")
    reasoning = get_int(path(usage, "completion_tokens_details"), "reasoning_tokens")
    return Usage(input=prompt - cached, cache_read=cached, output=output, reasoning=reasoning, source="reported")


def responses_usage(usage: Any) -> Usage:
    """Responses API: input_tokens / output_tokens (+ details)."""
    if usage is None:
        return Usage(source="missing")
    prompt = get_int(usage, "input_tokens")
    cached = min(get_int(path(usage, "input_tokens_details"), "cached_tokens"), prompt)
    output = get_int(usage, "output_tokens")
    reasoning = get_int(path(usage, "output_tokens_details"), "reasoning_tokens")
    return Usage(input=prompt - cached, cache_read=cached, output=output, reasoning=reasoning, source="reported")


def embeddings_usage(usage: Any) -> Usage:
    if usage is None:
        return Usage(source="missing")
    return Usage(input=get_int(usage, "prompt_tokens"), source="reported")
