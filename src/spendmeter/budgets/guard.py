"""What `BudgetEngine.check` needs besides the config: the store call under a deadline, the reservations of
calls in flight, and the local view used while the store is unreachable.

- `reserve()` runs the store's atomic reserve in a small thread pool and waits at most `timeout_s`: the
  caller's thread (an asyncio event loop, say) is never held longer. A store that fails or misses the
  deadline is marked down in the writer; a reservation that succeeds after its caller gave up is released
  at once (nobody will settle it).
- `hold()` / `take()`: a reservation is remembered per call (the `Call` object is kept, so its id cannot be
  reused by another call while it is held) until the call finishes.
- The local view, per key: the used amount (spend + reservations) last read from the store, plus what this
  process settled and reserved since. `decide_blind()` applies the admission rule to it.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from spendmeter.budgets.spend import Claim, SpendKey, SpendStore, admits
from spendmeter.budgets.writer import SpendWriter
from spendmeter.call import Call

Held = tuple[Call, str, tuple[SpendKey, ...], int, bool]  # call, reservation id, keys, nano, made blind
Decision = tuple[int | None, list[int]]  # (index of the first claim refused, or None; used per claim)


class Reservations:
    def __init__(self, store: SpendStore, writer: SpendWriter | None, *, timeout_s: float, workers: int = 4) -> None:
        self.store = store
        self.writer = writer  # None: the store does no I/O (memory), called directly
        self.timeout_s = timeout_s
        self._workers = workers
        self._fresh()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (r := ref()) is not None and r._fresh())

    def _fresh(self) -> None:
        """Also in a forked child: the parent's calls in flight are the parent's; its pool threads stayed
        there (a new executor starts its threads on first use)."""
        self._held: dict[int, Held] = {}
        self._lock = threading.Lock()
        self._seen: dict[SpendKey, int] = {}
        self._since: dict[SpendKey, int] = {}
        self._inflight: set[Future[Any]] = set()
        self._pool = None if self.writer is None else ThreadPoolExecutor(self._workers, "spendmeter-budgets-check")

    # -- the store, under a deadline ----------------------------------------------------------------
    def reserve(self, rid: str, claims: list[Claim], nano: int, expires_at: float, now: float) -> Decision | None:
        """The store's decision, or None when it is down or missed the deadline."""
        if self.writer is None or self._pool is None:
            return self.store.reserve(rid, claims, nano, expires_at, now)
        if not self.writer.up:
            return None
        future = self._pool.submit(self.store.reserve, rid, claims, nano, expires_at, now)
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)
        try:
            decision = future.result(timeout=self.timeout_s)
        except FutureTimeout:
            self.writer.mark_down(f"no answer within {self.timeout_s * 1000:.0f} ms")
            if nano > 0:  # it may still succeed later: then release what nobody will settle
                future.add_done_callback(lambda f: self._release_late(f, rid))
            return None
        except Exception as exc:
            self.writer.mark_down(type(exc).__name__)
            return None
        for claim, used in zip(claims, decision[1], strict=True):
            self._seen[claim[0]] = used
            self._since.pop(claim[0], None)
        return decision

    def _release_late(self, future: Future[Any], rid: str) -> None:
        if not future.cancelled() and future.exception() is None and future.result()[0] is None:
            assert self.writer is not None
            self.writer.put((rid, ()))

    # -- the local view -----------------------------------------------------------------------------
    def decide_blind(self, claims: list[Claim], nano: int, closed: list[bool]) -> Decision:
        used = [self._seen.get(c[0], 0) + self._since.get(c[0], 0) for c in claims]
        for i, (_key, limit, strict) in enumerate(claims):
            if closed[i] or not admits(used[i], limit, nano, strict):
                return i, used
        return None, used

    def spent_blind(self, items: list[tuple[SpendKey, int]]) -> None:
        """Spend settled while the store is away: part of the local view until it answers again."""
        for key, nano in items:
            self._since[key] = self._since.get(key, 0) + nano

    def local_used(self, budget: str, period: str) -> dict[str, int]:
        seen = list(self._seen.items())
        return {k[1]: u + self._since.get(k, 0) for k, u in seen if k[0] == budget and k[2] == period}

    # -- calls in flight ----------------------------------------------------------------------------
    def hold(self, call: Call, rid: str, keys: tuple[SpendKey, ...], nano: int, blind: bool) -> None:
        if blind:
            self.spent_blind([(k, nano) for k in keys])
        with self._lock:
            self._held[id(call)] = (call, rid, keys, nano, blind)

    def take(self, call: Call) -> str | None:
        """The finished call's reservation id to settle in the store (None: none, or one made blind, which
        lives only in the local view and is dropped from it here)."""
        with self._lock:
            held = self._held.pop(id(call), None)
        if held is None or held[0] is not call:
            return None
        _call, rid, keys, nano, blind = held
        if blind:
            self.spent_blind([(k, -nano) for k in keys])
            return None
        return rid

    def sweep(self, older_than_s: float) -> int:
        """Forget calls held longer than `older_than_s` (they never finished; their store rows expire)."""
        limit = time.perf_counter() - older_than_s
        with self._lock:
            stale = [k for k, v in self._held.items() if v[0].start_monotonic < limit]
            for k in stale:
                del self._held[k]
        return len(stale)

    def close(self, deadline: float) -> bool:
        """Stop the pool; True when no store call is still running (so the store may be closed)."""
        if self._pool is None:
            return True
        self._pool.shutdown(wait=False, cancel_futures=True)
        for future in list(self._inflight):
            try:
                future.exception(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:  # still running (a frozen store), or cancelled
                if not future.done():
                    return False
        return True
