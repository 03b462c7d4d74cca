"""The cells `reconcile` compares: one per UTC day x provider x model, the ledger's side with the counts the
causes are computed from, the provider's side, and the tolerance that flags a cell."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from spendmeter.analytics.views import money

_DATED = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8})$")
UNATTRIBUTED = "(not per model)"


def base_model(model: str | None) -> str:
    return UNATTRIBUTED if model is None else _DATED.sub("", model.strip().lower())


@dataclass(frozen=True, slots=True)
class Tolerance:
    relative: Decimal | None = None
    absolute: Decimal | None = None

    def exceeded(self, diff: Decimal, reference: Decimal) -> bool:
        if self.absolute is not None:
            return abs(diff) > self.absolute
        assert self.relative is not None
        return abs(diff) > self.relative * abs(reference) if reference else diff != 0

    def __str__(self) -> str:
        if self.absolute is not None:
            return f"${money(self.absolute)}"
        return f"{money(self.relative * 100)}%"  # type: ignore[operator]


@dataclass(slots=True)
class LedgerCell:
    cost: Decimal = Decimal(0)
    calls: int = 0
    unpriced: int = 0
    unpriced_tokens: int = 0
    streams_without_usage: int = 0
    estimated: int = 0
    errors: int = 0
    blocked: int = 0
    retries: int = 0
    retried_calls: int = 0
    priced_not_ok: int = 0
    priced_not_ok_cost: Decimal = Decimal(0)
    sources: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)

    def add(self, other: LedgerCell) -> None:
        for name in ("cost", "calls", "unpriced", "unpriced_tokens", "streams_without_usage", "estimated", "errors",
                     "blocked", "retries", "retried_calls", "priced_not_ok", "priced_not_ok_cost"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.sources |= other.sources
        self.models |= other.models


@dataclass(slots=True)
class Cell:
    day: date
    provider: str
    model: str
    ledger: LedgerCell
    billed: Decimal
    details: list[str] = field(default_factory=list)
    over: bool = False
    causes: list[str] = field(default_factory=list)

    @property
    def diff(self) -> Decimal:
        return self.ledger.cost - self.billed
