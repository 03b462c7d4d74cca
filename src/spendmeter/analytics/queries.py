"""Questions over the ledger: spend, tokens and calls grouped by feature, user, model, agent, provider,
conversation or day (or two of them), and the calls of one user or conversation.

Every query takes a `Window` (from inclusive, to exclusive; UTC) and equality filters. Days are UTC days.
Money stays `Decimal` here (exact sums, see `source`); turning it into JSON or text is the callers' job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from spendmeter.analytics.source import LedgerSource, to_datetime, to_decimal

UNKNOWN = "unknown"  # what a never-set attribution reads as, as on /metrics

# dimension -> SQL expression (COALESCE: a NULL column groups and reads as "unknown")
DIMENSIONS: dict[str, str] = {
    "feature": "COALESCE(feature, 'unknown')",
    "user": "COALESCE(user_id, 'unknown')",
    "model": "model",
    "agent": "COALESCE(agent, 'unknown')",
    "provider": "provider",
    "conversation": "COALESCE(conversation, 'unknown')",
    "day": "$DAY",
}
FILTER_COLUMNS: dict[str, str] = {
    "feature": "feature", "user": "user_id", "model": "model", "agent": "agent", "provider": "provider",
    "conversation": "conversation",
}  # fmt: skip

AGGREGATES = (
    "$DSUM(cost_total_usd), SUM(input_tokens), SUM(cache_read_tokens), "
    "SUM(cache_write_5m_tokens + cache_write_1h_tokens), SUM(output_tokens), SUM(reasoning_tokens), COUNT(*), "
    "SUM(CASE WHEN unpriced_reason IS NOT NULL THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END), "
    "COUNT(DISTINCT conversation), COUNT(DISTINCT user_id)"
)
CALL_COLUMNS = (
    "started_at", "duration_s", "provider", "operation", "model", "user_id", "feature", "agent", "conversation",
    "stream", "batch", "status", "error_type", "end_reason", "attempts", "input_tokens", "cache_read_tokens",
    "cache_write_5m_tokens", "cache_write_1h_tokens", "output_tokens", "reasoning_tokens", "usage_source",
    "cost_total_usd", "cost_source", "price_entry", "unpriced_reason", "response_id",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Window:
    """[start, end) in UTC; None: unbounded on that side."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(slots=True)
class Totals:
    cost: Decimal = Decimal(0)  # priced calls only: an unpriced call adds no invented number
    input: int = 0
    cache_read: int = 0
    cache_write: int = 0
    output: int = 0
    reasoning: int = 0  # a subset of output
    calls: int = 0
    unpriced_calls: int = 0
    error_calls: int = 0
    blocked_calls: int = 0
    conversations: int = 0
    users: int = 0

    @property
    def tokens(self) -> int:
        """Every billed token (input, cache read and write, output; reasoning is inside output)."""
        return self.input + self.cache_read + self.cache_write + self.output


@dataclass(slots=True)
class Group:
    key: dict[str, str]  # dimension -> value
    totals: Totals = field(default_factory=Totals)


def totals_from_row(cells: tuple[Any, ...]) -> Totals:
    cost, inp, cr, cw, out, reasoning, calls, unpriced, errors, blocked, convs, users = cells
    return Totals(to_decimal(cost), int(inp or 0), int(cr or 0), int(cw or 0), int(out or 0), int(reasoning or 0),
                  int(calls or 0), int(unpriced or 0), int(errors or 0), int(blocked or 0), int(convs or 0),
                  int(users or 0))  # fmt: skip


def where_clause(src: LedgerSource, window: Window, filters: dict[str, str]) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if window.start is not None:
        clauses.append("started_at >= ?")
        params.append(src.stamp(window.start))
    if window.end is not None:
        clauses.append("started_at < ?")
        params.append(src.stamp(window.end))
    for name, value in sorted(filters.items()):
        column = FILTER_COLUMNS[name]
        if value == UNKNOWN:  # as the groups show a NULL attribution
            clauses.append(f"({column} IS NULL OR {column} = ?)")
        else:
            clauses.append(f"{column} = ?")
        params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def grouped(
    src: LedgerSource,
    by: tuple[str, ...],
    window: Window = Window(),
    filters: dict[str, str] | None = None,
    *,
    limit: int | None = None,
    order: str = "cost",
) -> list[Group]:
    """Totals per distinct value of the `by` dimensions. `order`: "cost" (highest first, then by key) or
    "key" (by the dimensions in order: days ascending)."""
    unknown = [d for d in by if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimension {unknown[0]!r}; expected one of {', '.join(DIMENSIONS)}")
    exprs = [DIMENSIONS[d] for d in by]
    where, params = where_clause(src, window, filters or {})
    keys = ", ".join(exprs)
    positions = ", ".join(str(i + 1) for i in range(len(exprs)))
    # SQLite's sums are text: ranking them in SQL would mean a second (float) aggregate per group, so there the
    # groups are ranked here, exactly, by their Decimal sums. PostgreSQL ranks NUMERIC sums itself and limits.
    rank_here = order == "cost" and src.dialect == "sqlite"
    if order == "cost" and not rank_here:
        order_by = f"COALESCE(SUM(cost_total_usd), 0) DESC, {positions}"
    else:
        order_by = positions
    text = f"SELECT {keys}, {AGGREGATES} FROM spendmeter_ledger{where} GROUP BY {positions} ORDER BY {order_by}"
    if limit is not None and not rank_here:
        text += " LIMIT ?"
        params.append(int(limit))
    n = len(exprs)
    groups = [Group(dict(zip(by, (str(v) for v in row[:n]), strict=True)), totals_from_row(row[n:]))
              for row in src.query(text, params)]
    if rank_here:
        groups.sort(key=lambda g: -g.totals.cost)  # stable: equal costs stay in key order
        groups = groups[:limit] if limit is not None else groups
    return groups


def total(src: LedgerSource, window: Window = Window(), filters: dict[str, str] | None = None) -> Totals:
    where, params = where_clause(src, window, filters or {})
    rows = src.query(f"SELECT {AGGREGATES} FROM spendmeter_ledger{where}", params)
    return totals_from_row(rows[0]) if rows else Totals()


def calls(
    src: LedgerSource, window: Window = Window(), filters: dict[str, str] | None = None, *, limit: int = 100
) -> list[dict[str, Any]]:
    """The calls themselves, newest first: one dict per ledger row (cost a Decimal or None when unpriced)."""
    where, params = where_clause(src, window, filters or {})
    text = f"SELECT {', '.join(CALL_COLUMNS)} FROM spendmeter_ledger{where} ORDER BY started_at DESC, id DESC LIMIT ?"
    out = []
    for row in src.query(text, [*params, int(limit)]):
        item = dict(zip(CALL_COLUMNS, row, strict=True))
        item["started_at"] = to_datetime(item["started_at"])
        item["stream"], item["batch"] = bool(item["stream"]), bool(item["batch"])
        item["cost_total_usd"] = None if item["cost_total_usd"] is None else to_decimal(item["cost_total_usd"])
        out.append(item)
    return out


def span(src: LedgerSource, filters: dict[str, str] | None = None) -> tuple[datetime | None, datetime | None]:
    """The first and last `started_at` of the (filtered) ledger."""
    where, params = where_clause(src, Window(), filters or {})
    rows = src.query(f"SELECT MIN(started_at), MAX(started_at) FROM spendmeter_ledger{where}", params)
    return (to_datetime(rows[0][0]), to_datetime(rows[0][1])) if rows else (None, None)
