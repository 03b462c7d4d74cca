"""Anthropic usage (messages, stream events, batch results) → disjoint `Usage` classes.

input = input_tokens (already excludes cache reads and writes); cache_read = cache_read_input_tokens; cache
writes split into 5-minute and 1-hour writes when `cache_creation` says so (else all 5-minute, the default
TTL); output = output_tokens, with `thinking_tokens` (newer SDKs) as the reasoning inside it.
"""

from __future__ import annotations

from typing import Any

from spendmeter.call import Usage
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
