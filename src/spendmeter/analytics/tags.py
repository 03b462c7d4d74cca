"""Spend by tag: the ledger's `tags` column (`attribute(team="payments", tenant="acme")`, a JSON object) grouped
by one tag's value, with the same totals, window and filters as `analytics.queries`.

A call without the tag groups as `unknown`, as a never-set attribution does. Tag names are checked against the
same rule as `attribute()` before they reach SQL, so a name can only ever be a plain identifier.
"""

from __future__ import annotations

from spendmeter.analytics.queries import AGGREGATES, Group, Window, totals_from_row, where_clause
from spendmeter.analytics.source import LedgerSource
from spendmeter.attribution import check_tag_name

__all__ = ["by_tag", "check_tag_name", "tag_expression", "tag_names"]
UNKNOWN = "unknown"
ALL_TIME = Window()


def tag_expression(src: LedgerSource, name: str) -> str:
    """SQL for the value of tag `name` on a ledger row (`unknown` when the call has no such tag)."""
    check_tag_name(name)
    if src.dialect == "sqlite":
        return f"COALESCE(json_extract(tags, '$.{name}'), '{UNKNOWN}')"
    return f"COALESCE(CAST(tags AS jsonb) ->> '{name}', '{UNKNOWN}')"


def by_tag(
    src: LedgerSource,
    name: str,
    window: Window = ALL_TIME,
    filters: dict[str, str] | None = None,
    *,
    limit: int | None = None,
) -> list[Group]:
    """Totals per value of tag `name`, highest spend first; `Group.key` is {name: value}."""
    expr = tag_expression(src, name)
    where, params = where_clause(src, window, filters or {})
    rank = "COALESCE(CAST($DSUM(cost_total_usd) AS REAL), 0)" if src.dialect == "sqlite" else (
        "COALESCE(SUM(cost_total_usd), 0)")
    text = f"SELECT {expr}, {AGGREGATES} FROM spendmeter_ledger{where} GROUP BY 1 ORDER BY {rank} DESC, 1"
    if limit is not None:
        text += " LIMIT ?"
        params.append(int(limit))
    return [Group({name: str(row[0])}, totals_from_row(row[1:])) for row in src.query(text, params)]


def tag_names(src: LedgerSource, window: Window = ALL_TIME) -> list[str]:
    """Every tag name the ledger's calls carry in `window`, sorted."""
    where, params = where_clause(src, window, {})
    if src.dialect == "sqlite":
        text = f"SELECT DISTINCT j.key FROM spendmeter_ledger, json_each(spendmeter_ledger.tags) AS j{where}"
        text += (" AND " if where else " WHERE ") + "spendmeter_ledger.tags IS NOT NULL"
    else:
        text = (f"SELECT DISTINCT jsonb_object_keys(CAST(tags AS jsonb)) FROM spendmeter_ledger{where}"
                + (" AND " if where else " WHERE ") + "tags IS NOT NULL")
    return sorted(str(row[0]) for row in src.query(text, params))
