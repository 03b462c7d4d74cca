"""Ledger spend against a provider's own cost data, per UTC day x provider x model, with the likely cause
of each difference computed from the ledger's rows.

Models are compared without their date suffix (`gpt-4o-mini-2024-07-18` and `gpt-4o-mini` are one model):
the ledger keeps the served model, an export may name either. Only the providers an export covers are read
from the ledger (`azure.ai.openai`, `aws.bedrock`, `gcp.vertex_ai` are billed by their clouds, not there).

The verdict is on the total over the compared days: `over` when |ledger - provider| exceeds the tolerance
(relative to the provider's total, or absolute in USD). Each cell beyond the tolerance is explained.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from spendmeter.analytics.causes import explain
from spendmeter.analytics.cells import UNATTRIBUTED, Cell, LedgerCell, Tolerance, base_model
from spendmeter.analytics.exports import ExportError, ExportLine, load_exports
from spendmeter.analytics.periods import BadInput
from spendmeter.analytics.queries import Window
from spendmeter.analytics.source import LedgerSource, to_decimal
from spendmeter.analytics.views import money, table

__all__ = ["UNATTRIBUTED", "ExportError", "Result", "base_model", "load_exports", "parse_tolerance", "reconcile"]

def parse_tolerance(text: str) -> Tolerance:
    t = text.strip().lower()
    try:
        if t.startswith("$") or t.endswith("usd"):
            return Tolerance(absolute=Decimal(t.strip("$").removesuffix("usd").strip()))
        if t.endswith("%"):
            return Tolerance(relative=Decimal(t[:-1]) / 100)
        value = Decimal(t)
    except ArithmeticError:
        value = Decimal(-1)
    if not 0 <= value < 1:
        raise BadInput(f"--tolerance: expected a percentage (5%), a fraction below 1 (0.05) or dollars ($2), "
                       f"got {text!r}")
    return Tolerance(relative=value)


_TOKENS = "input_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens + output_tokens"
_LEDGER_SQL = (
    "SELECT $DAY, provider, model, COALESCE(cost_source, ''), $DSUM(cost_total_usd), COUNT(*), "
    "SUM(CASE WHEN unpriced_reason IS NOT NULL THEN 1 ELSE 0 END), "
    f"SUM(CASE WHEN unpriced_reason IS NOT NULL THEN {_TOKENS} ELSE 0 END), "
    "SUM(CASE WHEN stream = ? AND usage_source = 'missing' AND status <> 'blocked' THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN usage_source = 'estimated' THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN attempts > 1 THEN attempts - 1 ELSE 0 END), SUM(CASE WHEN attempts > 1 THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN status <> 'ok' AND cost_total_usd IS NOT NULL THEN 1 ELSE 0 END), "
    "$DSUM(CASE WHEN status <> 'ok' THEN cost_total_usd END) "
    "FROM spendmeter_ledger WHERE {where} GROUP BY 1, 2, 3, 4"
)


def ledger_cells(src: LedgerSource, providers: set[str], w: Window) -> dict[tuple[date, str, str], LedgerCell]:
    clauses = [f"provider IN ({', '.join('?' * len(providers))})"]
    params: list[Any] = [True, *sorted(providers)]
    if w.start is not None:
        clauses.append("started_at >= ?")
        params.append(src.stamp(w.start))
    if w.end is not None:
        clauses.append("started_at < ?")
        params.append(src.stamp(w.end))
    cells: dict[tuple[date, str, str], LedgerCell] = defaultdict(LedgerCell)
    for row in src.query(_LEDGER_SQL.replace("{where}", " AND ".join(clauses)), params):
        day, provider, model, source, cost, *counts, priced_not_ok, not_ok_cost = row
        part = LedgerCell(to_decimal(cost), *(int(c or 0) for c in counts), int(priced_not_ok or 0),
                          to_decimal(not_ok_cost), {source} if source else set(), {model})
        cells[(date.fromisoformat(str(day)), provider, base_model(model))].add(part)
    return cells


@dataclass(slots=True)
class Result:
    cells: list[Cell]
    tolerance: Tolerance
    ledger_total: Decimal
    billed_total: Decimal
    over: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "tolerance": str(self.tolerance), "over_tolerance": self.over,
            "ledger_usd": money(self.ledger_total), "provider_usd": money(self.billed_total),
            "difference_usd": money(self.ledger_total - self.billed_total),
            "cells": [{"day": c.day.isoformat(), "provider": c.provider, "model": c.model,
                       "ledger_usd": money(c.ledger.cost), "provider_usd": money(c.billed),
                       "difference_usd": money(c.diff), "over_tolerance": c.over, "causes": c.causes,
                       "ledger_calls": c.ledger.calls} for c in self.cells],
        }  # fmt: skip

    def render(self) -> str:
        rows = [[c.day.isoformat(), c.provider, c.model, money(c.ledger.cost) or "0", money(c.billed) or "0",
                 money(c.diff) or "0", _pct(c.diff, c.billed), "OVER" if c.over else "ok"] for c in self.cells]
        out = [table(["day", "provider", "model", "ledger_usd", "provider_usd", "diff_usd", "diff", ""], rows,
                     numeric_from=3)]
        for c in self.cells:
            if c.over:
                out.append(f"\n{c.day} {c.provider} {c.model}: ledger {money(c.ledger.cost)} vs provider "
                           f"{money(c.billed)} (difference {money(c.diff)})\n")
                out += [f"  - {cause}\n" for cause in c.causes]
        diff = self.ledger_total - self.billed_total
        verdict = "ABOVE" if self.over else "within"
        out.append(f"\ntotal: ledger {money(self.ledger_total)} USD, provider {money(self.billed_total)} USD, "
                   f"difference {money(diff)} USD ({_pct(diff, self.billed_total)}): {verdict} the tolerance "
                   f"of {self.tolerance}\n")
        return "".join(out)


def _pct(diff: Decimal, reference: Decimal) -> str:
    return f"{float(diff / reference) * 100:+.2f}%" if reference else ("n/a" if diff else "0.00%")


def reconcile(src: LedgerSource, lines: list[ExportLine], w: Window, tolerance: Tolerance) -> Result:
    if w.start is not None or w.end is not None:
        lines = [x for x in lines if _in_window(x.day, w)]
    billed: dict[tuple[date, str, str], Decimal] = defaultdict(Decimal)
    details: dict[tuple[date, str, str], list[str]] = defaultdict(list)
    for x in lines:
        key = (x.day, x.provider, base_model(x.model))
        billed[key] += x.cost
        details[key].append(x.detail)
    days = sorted({d for d, _, _ in billed})
    providers = {p for _, p, _ in billed}
    if not days:
        raise ExportError("the exports hold no cost lines (in this window)")
    # Compare the days the exports cover: the ledger may hold days the export has not reached.
    span = Window(w.start, w.end) if (w.start or w.end) else _days_window(days)
    ledger = ledger_cells(src, providers, span) if providers else {}
    cells = [Cell(k[0], k[1], k[2], ledger.get(k, LedgerCell()), billed.get(k, Decimal(0)), details.get(k, []))
             for k in sorted(set(billed) | set(ledger))]
    ledger_days = {(c.day, c.provider) for c in cells if c.ledger.calls}
    for c in cells:
        c.over = tolerance.exceeded(c.diff, c.billed)
        if c.over:
            c.causes = explain(c, cells, ledger_days, tolerance)
    ledger_total = sum((c.ledger.cost for c in cells), Decimal(0))
    billed_total = sum((c.billed for c in cells), Decimal(0))
    return Result(cells, tolerance, ledger_total, billed_total, tolerance.exceeded(ledger_total - billed_total,
                                                                                   billed_total))


def _in_window(day: date, w: Window) -> bool:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return (w.start is None or start >= w.start) and (w.end is None or start < w.end)


def _days_window(days: list[date]) -> Window:
    return Window(datetime.combine(days[0], time(), tzinfo=UTC),
                  datetime.combine(days[-1] + timedelta(days=1), time(), tzinfo=UTC))
