"""Anthropic usage (messages, stream events, batch results) → disjoint `Usage` classes.

input = input_tokens (already excludes cache reads and writes); cache_read = cache_read_input_tokens; cache
writes split into 5-minute and 1-hour writes when `cache_creation` says so (else all 5-minute, the default
TTL); output = output_tokens, with `thinking_tokens` (newer SDKs) as the reasoning inside it.

Multi-step calls: when `usage.iterations` is present (context compaction, the advisor tool, server-side
fallback, server tool loops), every entry is one billed sampling step with its own counts, and the top-level
fields cover only part of them (a `compaction` entry is never in them). The call's usage is then the sum
of every entry, and each entry is kept as a `Step` at the model that ran it (an entry without `model` ran
at the call's model), so pricing prices each step at its own model.

Server-side tools: `usage.server_tool_use.<tool>_requests` counts billed uses per tool (`web_search`, ...).
"""

from __future__ import annotations

from typing import Any

from spendmeter.call import Step, Usage
from spendmeter.providers.fields import get, get_int

USAGE_FIELDS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens",
)


def message_usage(usage: Any) -> Usage:
    if usage is None:
        return Usage(source="missing")
    fields = {name: get_int(usage, name) for name in USAGE_FIELDS}
    fields["thinking_tokens"] = get_int(get(usage, "output_tokens_details"), "thinking_tokens")
    return usage_from_fields(fields, get(usage, "cache_creation"))


def usage_from_fields(fields: dict[str, int], split: Any) -> Usage:
    write_total = fields["cache_creation_input_tokens"]
    write_1h = get_int(split, "ephemeral_1h_input_tokens") if split is not None else 0
    write_5m = get_int(split, "ephemeral_5m_input_tokens") if split is not None else write_total
    if split is not None and write_5m + write_1h != write_total and write_total:
        # The breakdown disagrees with the total: trust the total, attribute the rest to the 5-minute class.
        write_5m = max(0, write_total - write_1h)
    return Usage(
        input=fields["input_tokens"],
        cache_read=fields["cache_read_input_tokens"],
        cache_write_5m=write_5m,
        cache_write_1h=write_1h,
        output=fields["output_tokens"],
        reasoning=min(fields.get("thinking_tokens", 0), fields["output_tokens"]),
        source="reported",
    )


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        input=a.input + b.input,
        cache_read=a.cache_read + b.cache_read,
        cache_write_5m=a.cache_write_5m + b.cache_write_5m,
        cache_write_1h=a.cache_write_1h + b.cache_write_1h,
        output=a.output + b.output,
        reasoning=a.reasoning + b.reasoning,
        source="reported",
    )


def iteration_steps(iterations: Any, model: str | None) -> tuple[Step, ...]:
    """One `Step` per `usage.iterations` entry (any type), at the entry's model or else the call's."""
    steps: list[Step] = []
    for entry in iterations or ():
        fields = {name: get_int(entry, name) for name in USAGE_FIELDS}
        fields["thinking_tokens"] = get_int(get(entry, "output_tokens_details"), "thinking_tokens")
        step_model = get(entry, "model") or model or "unknown"
        steps.append(Step(str(step_model), usage_from_fields(fields, get(entry, "cache_creation")),
                          str(get(entry, "type") or "message")))
    return tuple(steps)


def usage_with_steps(top: Usage, steps: tuple[Step, ...]) -> Usage:
    """The call's usage: the sum of its steps when the response lists them, else the top-level fields."""
    if not steps:
        return top
    total = Usage(source="reported")
    for step in steps:
        total = _add(total, step.usage)
    if total.reasoning == 0 and top.reasoning:
        # Entries carry no thinking breakdown: keep the top-level one (a subset of the summed output).
        total.reasoning = min(top.reasoning, total.output)
    return total


def server_tool_uses(usage: Any) -> tuple[tuple[str, int], ...]:
    """`server_tool_use: {web_search_requests: 2, web_fetch_requests: 1}` -> (("web_fetch", 1), ("web_search", 2)).

    Every `<tool>_requests` count is read, typed or not, so a tool newer than the SDK is still counted.
    """
    block = get(usage, "server_tool_use")
    if block is None:
        return ()
    fields = block if isinstance(block, dict) else {
        **getattr(block, "__dict__", {}), **(getattr(block, "model_extra", None) or {})}
    counts = {name.removesuffix("_requests"): get_int(fields, name) for name in fields if name.endswith("_requests")}
    return tuple(sorted((tool, n) for tool, n in counts.items() if n))
