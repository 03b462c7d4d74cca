"""The ledger's answers as JSON-ready dicts: costs as exact decimal strings (`cost_usd`) plus a float for
charts (`cost_usd_float`), tokens by class, call counts. Shared by the cost API and `spendmeter report`."""

from __future__ import annotations

from datetime import datetime
from decimal import Context, Decimal
from typing import Any

from spendmeter.analytics.queries import Group, Totals, Window

_WIDE = Context(prec=60)


def money(value: Decimal | None) -> str | None:
    """Plain notation without trailing zeros, whatever the backend kept: `0.00123`, `12`, `0`."""
    if value is None:
        return None
    text = format(_WIDE.normalize(value) if value else Decimal(0), "f")
    return text


def totals_json(t: Totals) -> dict[str, Any]:
    return {
        "cost_usd": money(t.cost),
        "cost_usd_float": float(t.cost),
        "tokens": t.tokens,
        "tokens_by_class": {"input": t.input, "cache_read": t.cache_read, "cache_write": t.cache_write,
                            "output": t.output, "reasoning": t.reasoning},
        "calls": t.calls,
        "unpriced_calls": t.unpriced_calls,
        "error_calls": t.error_calls,
        "blocked_calls": t.blocked_calls,
        "conversations": t.conversations,
        "users": t.users,
    }


def group_json(g: Group, rename: dict[str, str] | None = None) -> dict[str, Any]:
    rename = rename or {}
    return {**{rename.get(k, k): v for k, v in g.key.items()}, **totals_json(g.totals)}


def stamp(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")


def window_json(w: Window) -> dict[str, str | None]:
    return {"from": stamp(w.start), "to": stamp(w.end)}


def call_json(c: dict[str, Any]) -> dict[str, Any]:
    out = dict(c)
    out["started_at"] = stamp(c["started_at"])
    cost = c["cost_total_usd"]
    del out["cost_total_usd"]
    out["cost_usd"] = money(cost)
    out["cost_usd_float"] = None if cost is None else float(cost)
    out["tokens"] = sum(int(c[k] or 0) for k in ("input_tokens", "cache_read_tokens", "cache_write_5m_tokens",
                                                  "cache_write_1h_tokens", "output_tokens"))
    return out


def table(header: list[str], rows: list[list[str]], *, numeric_from: int) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i >= numeric_from else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]) + "\n"
