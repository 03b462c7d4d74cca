"""Errors spendmeter raises on purpose: bad configuration at init(), and a blocking budget before a call.
Nothing else of ours ever reaches the caller."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any


class ConfigError(ValueError):
    """Bad configuration: the message names the file, the key and the fix."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        where = ", ".join(p for p in (f"file {file}" if file else "", f"key {key!r}" if key else "") if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.key = key


class BudgetExceeded(Exception):
    """Raised before the request is sent: a blocking budget has no room for this call."""

    def __init__(
        self,
        budget: str,
        scope: str,
        key: str,
        spent: Decimal,
        limit: Decimal,
        period_end: datetime,
        *,
        estimated: Decimal | None = None,
    ) -> None:
        self.budget = budget
        self.scope = scope
        self.key = key
        self.spent = spent
        self.limit = limit
        self.period_end = period_end
        self.estimated = estimated  # the pre-call estimate that tipped it, when `estimate: true` blocked
        who = "" if scope == "global" else f" for {scope} {key!r}"
        if estimated is None:
            why = f"spent ${_usd(spent)} of ${_usd(limit)}"
        else:
            why = f"spent ${_usd(spent)} of ${_usd(limit)}, and this call may cost up to ${_usd(estimated)}"
        super().__init__(
            f"budget {budget!r}{who} exhausted: {why}; resets at {period_end.isoformat(timespec='seconds')}"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # keyword-only `estimated` needs help to pickle across processes
        return (
            _rebuild_exceeded,
            (self.budget, self.scope, self.key, self.spent, self.limit, self.period_end, self.estimated),
        )


def _rebuild_exceeded(*args: Any) -> BudgetExceeded:
    *head, estimated = args
    return BudgetExceeded(*head, estimated=estimated)


def plain_usd(amount: Decimal) -> str:
    """Exact and without exponent or trailing zeros: 1.500000000 -> '1.5', 100 -> '100'."""
    return format(amount.normalize(), "f")


def _usd(amount: Decimal) -> str:
    cents = amount.quantize(Decimal("0.01"))
    return f"{cents:f}" if cents == amount else plain_usd(amount)  # never round 1.999 up to "2.00"
