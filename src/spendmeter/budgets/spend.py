"""Spend amounts and the spend store interface, plus the in-process store.

Amounts are integers (1 USD = 10**9 nano-USD) so that sums over millions of calls are exact: a call priced
at $0.0000015 (one token at $1.50 per million) keeps its value, where micro-dollars would round it away.
A 64-bit column holds up to ~$9.2 billion per row.

Reservations (`reserve` / `settle`): a blocking budget admits a call only if the spend so far, plus what
calls still in flight have reserved, leaves room; the admission and the reservation are one atomic step in
every store, so concurrent callers cannot all pass the same check. A reservation carries an expiry time
(wall clock, seconds since the epoch, comparable across hosts): one whose call never finished (a crashed
process) stops counting then.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Protocol

NANO_PER_USD = 10**9
# A nano-USD amount a BIGINT/INTEGER column holds with room for sums (~$9.2 billion per row).
MAX_NANO = 2**63 - 1

# (budget name, scope key, period start as ISO date) -> nano-USD to add
SpendKey = tuple[str, str, str]
# (key, limit in nano-USD, strict): strict = the reserved amount itself must fit under the limit
# (`estimate: true`); otherwise the call is admitted while spend + reservations are below the limit.
Claim = tuple[SpendKey, int, bool]
# One settlement: the reservation it replaces (or None) and the amounts to add.
Settlement = tuple[str | None, Sequence[tuple[SpendKey, int]]]


def to_nano(amount_usd: Decimal) -> int:
    return int((amount_usd * NANO_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_nano(nano: int) -> Decimal:
    return Decimal(nano).scaleb(-9)


def clamp_nano(nano: int) -> int:
    """An amount a 64-bit column can store (a response claiming 10**19 tokens must not refuse a batch)."""
    return max(0, min(int(nano), MAX_NANO // 1024))  # headroom: 1024 such amounts still add up in a BIGINT


def admits(used: int, limit: int, nano: int, strict: bool) -> bool:
    """The one admission rule, shared by every store."""
    return used + nano <= limit if strict and nano > 0 else used < limit


class SpendStore(Protocol):
    def add(self, items: Sequence[tuple[SpendKey, int]]) -> None:
        """Add every amount, all or none: a call's spend lands in all its budgets at once."""

    def reserve(
        self, rid: str, claims: Sequence[Claim], nano: int, expires_at: float, now: float
    ) -> tuple[int | None, list[int]]:
        """Atomically: for each claim, used = spend + live reservations; if every claim `admits`, hold `nano`
        under `rid` on each key. Returns (index of the first claim refused or None, used per claim)."""

    def settle(self, settlements: Sequence[Settlement]) -> None:
        """Atomically: drop each settlement's reservation and add its amounts."""

    def reserved(self, budget: str, period: str, now: float) -> dict[str, int]:
        """Live reservations per key."""

    def expire(self, now: float) -> int:
        """Forget reservations that expired; returns how many."""

    def get(self, budget: str, key: str, period: str) -> int:
        """Spent so far (nano-USD); 0 when nothing was recorded."""

    def top(self, budget: str, period: str, min_nano: int, limit: int) -> list[tuple[str, int]]:
        """Keys with spend >= min_nano, highest first, at most `limit`."""

    def count_at_least(self, budget: str, period: str, nano: int) -> int:
        """How many keys have spend >= nano."""

    def prune(self, budget: str, before_period: str) -> int:
        """Forget periods that started before `before_period`; returns rows removed."""

    def close(self) -> None: ...


class MemoryStore:
    """One process, thread-safe. Lost on restart; each worker process has its own. No I/O: the engine calls
    it on the caller's thread directly."""

    local = True  # no I/O, no deadline needed

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spend: dict[tuple[str, str], dict[str, int]] = {}  # (budget, period) -> key -> nano
        self._holds: dict[SpendKey, dict[str, tuple[int, float]]] = {}  # key -> rid -> (nano, expires_at)

    def __repr__(self) -> str:
        return "MemoryStore()"

    def add(self, items: Sequence[tuple[SpendKey, int]]) -> None:
        with self._lock:
            self._add(items)

    def _add(self, items: Sequence[tuple[SpendKey, int]]) -> None:
        for (budget, key, period), nano in items:
            keys = self._spend.setdefault((budget, period), {})
            keys[key] = keys.get(key, 0) + nano

    def _held(self, key: SpendKey, now: float) -> int:
        holds = self._holds.get(key)
        if not holds:
            return 0
        return sum(n for n, exp in holds.values() if exp > now)

    def reserve(
        self, rid: str, claims: Sequence[Claim], nano: int, expires_at: float, now: float
    ) -> tuple[int | None, list[int]]:
        with self._lock:
            used = [self._get(*key) + self._held(key, now) for key, _limit, _strict in claims]
            for i, ((_key, limit, strict), u) in enumerate(zip(claims, used, strict=True)):
                if not admits(u, limit, nano, strict):
                    return i, used
            if nano > 0:
                for key, _limit, _strict in claims:
                    self._holds.setdefault(key, {})[rid] = (nano, expires_at)
            return None, used

    def settle(self, settlements: Sequence[Settlement]) -> None:
        with self._lock:
            for rid, items in settlements:
                if rid is not None:
                    for key in [k for k, holds in self._holds.items() if rid in holds]:
                        del self._holds[key][rid]
                        if not self._holds[key]:
                            del self._holds[key]
                self._add(items)

    def reserved(self, budget: str, period: str, now: float) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {}
            for (b, key, p), holds in self._holds.items():
                if b == budget and p == period:
                    live = sum(n for n, exp in holds.values() if exp > now)
                    if live:
                        out[key] = live
            return out

    def expire(self, now: float) -> int:
        removed = 0
        with self._lock:
            for key in list(self._holds):
                holds = self._holds[key]
                for rid in [r for r, (_n, exp) in holds.items() if exp <= now]:
                    del holds[rid]
                    removed += 1
                if not holds:
                    del self._holds[key]
        return removed

    def _get(self, budget: str, key: str, period: str) -> int:
        return self._spend.get((budget, period), {}).get(key, 0)

    def get(self, budget: str, key: str, period: str) -> int:
        with self._lock:
            return self._get(budget, key, period)

    def top(self, budget: str, period: str, min_nano: int, limit: int) -> list[tuple[str, int]]:
        with self._lock:
            rows = [(k, v) for k, v in self._spend.get((budget, period), {}).items() if v >= min_nano]
        rows.sort(key=lambda kv: (-kv[1], kv[0]))
        return rows[:limit]

    def count_at_least(self, budget: str, period: str, nano: int) -> int:
        with self._lock:
            return sum(1 for v in self._spend.get((budget, period), {}).values() if v >= nano)

    def prune(self, budget: str, before_period: str) -> int:
        with self._lock:
            old = [bp for bp in self._spend if bp[0] == budget and bp[1] < before_period]
            removed = sum(len(self._spend.pop(bp)) for bp in old)
        return removed

    def close(self) -> None:
        pass
