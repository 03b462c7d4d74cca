"""OpenAI usage objects (or their JSON) → disjoint `Usage` classes.

input = prompt − cached − cache writes; cache_read = cached; cache_write = `cache_write_tokens` (counted as
`cache_write_5m`: OpenAI sells one cache-write class, and the 5-minute class is the one every price vector
prices as "the" cache-write rate, falling back to the input rate where the model has none); output includes
reasoning; reasoning is reported apart and never added twice. Pure functions over SDK objects *or* plain
dicts (raw responses are read as JSON).

Also here: the billed cost some OpenAI-compatible providers put in `usage` (OpenRouter `usage.cost`), and the
server-side tool uses of a Responses object.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from spendmeter.call import Usage
from spendmeter.providers.fields import get, get_int, path


def _split(prompt: int, details: Any, output: int, reasoning: int) -> Usage:
    cached = min(get_int(details, "cached_tokens"), prompt)
    written = min(get_int(details, "cache_write_tokens"), prompt - cached)
    return Usage(input=prompt - cached - written, cache_read=cached, cache_write_5m=written, output=output,
                 reasoning=min(reasoning, output), source="reported")


def chat_usage(usage: Any) -> Usage:
    """Chat completions and legacy completions: prompt_tokens / completion_tokens (+ details)."""
    if usage is None:
        return Usage(source="missing")
    return _split(get_int(usage, "prompt_tokens"), path(usage, "prompt_tokens_details"),
                  get_int(usage, "completion_tokens"),
                  get_int(path(usage, "completion_tokens_details"), "reasoning_tokens"))


def responses_usage(usage: Any) -> Usage:
    """Responses API: input_tokens / output_tokens (+ details)."""
    if usage is None:
        return Usage(source="missing")
    return _split(get_int(usage, "input_tokens"), path(usage, "input_tokens_details"),
                  get_int(usage, "output_tokens"),
                  get_int(path(usage, "output_tokens_details"), "reasoning_tokens"))


def billed_cost(usage: Any) -> Decimal | None:
    """OpenRouter's `usage.cost`: the USD (credits) the call was billed, when the response says it.

    With your own provider key (`is_byok`), `cost` is only OpenRouter's fee and the provider bills
    `cost_details.upstream_inference_cost` to your key: the call cost their sum.
    """
    cost = _usd(get(usage, "cost"))
    if cost is None:
        return None
    if get(usage, "is_byok") is True:
        upstream = _usd(get(get(usage, "cost_details"), "upstream_inference_cost"))
        if upstream is not None:
            cost += upstream
    return cost


def _usd(value: Any) -> Decimal | None:
    """A JSON number as Decimal, read through `str()` so its digits are kept (0.0000495 stays 0.0000495)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


# Responses output item types that are billed per call, and the tool name we count them under.
_TOOL_ITEMS = {
    "web_search_call": "web_search",
    "file_search_call": "file_search",
    "code_interpreter_call": "code_interpreter",
}


def responses_tools(response: Any) -> tuple[tuple[str, int], ...]:
    """Billed server-side tool uses of a Responses object.

    `tool_usage.web_search.num_requests` (when the response has it) is the billable count, and wins over
    counting `web_search_call` items (which also include page opens that are not billed separately).
    """
    counts: dict[str, int] = {}
    for item in get(response, "output") or ():
        tool = _TOOL_ITEMS.get(str(get(item, "type")))
        action = get(get(item, "action"), "type")
        if tool == "web_search" and action not in (None, "search"):
            continue  # opening or searching within a page is not a billed search
        if tool is not None:
            counts[tool] = counts.get(tool, 0) + 1
    reported = get(get(response, "tool_usage"), "web_search")
    if reported is not None:
        n = get_int(reported, "num_requests")
        if n:
            counts["web_search"] = n
        else:
            counts.pop("web_search", None)
    return tuple(sorted(counts.items()))


def embeddings_usage(usage: Any) -> Usage:
    if usage is None:
        return Usage(source="missing")
    return Usage(input=get_int(usage, "prompt_tokens"), source="reported")
