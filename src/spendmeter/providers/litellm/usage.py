"""LiteLLM usage objects → disjoint `Usage` classes.

LiteLLM reshapes every provider's usage into OpenAI's: `prompt_tokens` is *every* prompt token, with the
Anthropic cache reads and writes folded in (`prompt_tokens_details.cached_tokens`, `cache_creation_tokens` /
`cache_creation_input_tokens`; the TTL split in `cache_creation_token_details`). We split them back out:
input = prompt − cache reads − cache writes, so the classes stay disjoint and sum to the billed total.
Responses-API usage (`input_tokens` / `output_tokens`) has the same folding and the same split.
"""

from __future__ import annotations

from typing import Any

from spendmeter.call import Usage, UsageSource
from spendmeter.providers.fields import get, get_int


def _first(obj: Any, *names: str) -> int:
    for name in names:
        value = get_int(obj, name)
        if value:
            return value
    return 0


def _cache_writes(usage: Any, details: Any) -> tuple[int, int]:
    """(5-minute, 1-hour) cache writes. Durations other than 1 h are billed at the 5-minute write rate."""
    total = _first(details, "cache_creation_tokens", "cache_write_tokens") or _first(
        usage, "cache_creation_input_tokens", "_cache_creation_input_tokens"
    )
    split = get(details, "cache_creation_token_details") or get(details, "cache_write_tokens_details")
    write_1h = min(get_int(split, "ephemeral_1h_input_tokens"), total) if split is not None else 0
    return total - write_1h, write_1h


def _split(prompt: int, details: Any, usage: Any, output: int, reasoning: int, source: UsageSource) -> Usage:
    cache_read = min(_first(details, "cached_tokens") or get_int(usage, "cache_read_input_tokens"), prompt)
    write_5m, write_1h = _cache_writes(usage, details)
    writes = min(write_5m + write_1h, prompt - cache_read)
    if writes < write_5m + write_1h:  # inconsistent numbers: never let a class go negative
        write_1h = min(write_1h, writes)
        write_5m = writes - write_1h
    return Usage(
        input=prompt - cache_read - writes,
        cache_read=cache_read,
        cache_write_5m=write_5m,
        cache_write_1h=write_1h,
        output=output,
        reasoning=min(reasoning, output),
        source=source,
    )


def chat_usage(usage: Any, source: UsageSource = "reported") -> Usage:
    """`litellm.Usage` (completion, text_completion, embedding): prompt_tokens / completion_tokens."""
    if usage is None:
        return Usage(source="missing")
    output = get_int(usage, "completion_tokens")
    reasoning = get_int(get(usage, "completion_tokens_details"), "reasoning_tokens")
    return _split(get_int(usage, "prompt_tokens"), get(usage, "prompt_tokens_details"), usage, output, reasoning,
                  source)


def responses_usage(usage: Any, source: UsageSource = "reported") -> Usage:
    """`litellm.responses` usage: input_tokens / output_tokens (+ details), folded the same way."""
    if usage is None:
        return Usage(source="missing")
    output = get_int(usage, "output_tokens")
    reasoning = get_int(get(usage, "output_tokens_details"), "reasoning_tokens")
    return _split(get_int(usage, "input_tokens"), get(usage, "input_tokens_details"), usage, output, reasoning,
                  source)


def is_unreported(usage: Any) -> bool:
    """LiteLLM's marker for "the provider reported nothing" (its `UnreportedUsage` subclass)."""
    return usage is not None and type(usage).__name__ == "UnreportedUsage"
