"""Provider fields made safe at the boundary: a malformed response never drops a call, never makes a
negative or invented cost, and says that it was corrected.

Token counts must be whole numbers from 0 to `MAX_TOKENS`. Anything else a provider (or a proxy in front of
it) sends — a negative count, 10^19 tokens, a bool, a fraction, a count where a name belongs — is replaced
(negative and absurd counts by 0, reasoning capped at output) and the usage is marked `sanitized`: the call
is counted once, with the `usage` label saying its numbers were not taken as sent. Names (model, id, tier,
finish reasons) that are not strings become strings.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from spendmeter.call import Step, Usage
from spendmeter.providers.base import ResponseFacts

# 10^12 tokens at $0.000001 each is already $1M for one call: a larger count is a bug, not usage. It also keeps
# every count inside a database BIGINT with room to sum.
MAX_TOKENS = 10**12
_COUNTS = ("input", "cache_read", "cache_write_5m", "cache_write_1h", "output", "reasoning")


def _count(value: Any) -> int | None:
    """The value as a valid token count, or None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_TOKENS else None


def usage(u: Usage) -> Usage:
    """`u`, or a corrected copy marked `sanitized` when any count is not a valid token count."""
    counts = [getattr(u, name) for name in _COUNTS]
    valid = [_count(v) for v in counts]
    if None not in valid and u.reasoning <= u.output:
        return u
    fixed = dict(zip(_COUNTS, (v if v is not None else 0 for v in valid), strict=True))
    fixed["reasoning"] = min(fixed["reasoning"], fixed["output"])
    source = "sanitized" if u.source == "reported" else u.source
    return Usage(**fixed, source=source)  # type: ignore[arg-type]


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return str(value)


def facts(f: ResponseFacts) -> ResponseFacts:
    """The facts with every count and name storable; the same object when nothing needed fixing."""
    fixed_usage = usage(f.usage) if isinstance(f.usage, Usage) else Usage(source="sanitized")
    steps = tuple(Step(str(s.model), usage(s.usage), s.kind) for s in f.steps) if f.steps else f.steps
    tools = tuple((str(t), n) for t, n in f.tools if _count(n)) if f.tools else f.tools
    billed = f.billed_cost if f.billed_cost is None or f.billed_cost >= 0 else None  # never a negative cost
    names = (_text(f.model), _text(f.response_id), _text(f.service_tier))
    reasons = tuple(str(r) for r in f.finish_reasons) if f.finish_reasons else f.finish_reasons
    if (
        fixed_usage is f.usage
        and steps == f.steps
        and names == (f.model, f.response_id, f.service_tier)
        and reasons == f.finish_reasons
        and tools == f.tools
        and billed is f.billed_cost
    ):
        return f
    return dataclasses.replace(
        f, usage=fixed_usage, steps=steps, model=names[0], response_id=names[1], service_tier=names[2],
        finish_reasons=reasons, tools=tools, billed_cost=billed,
    )  # fmt: skip
