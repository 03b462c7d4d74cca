"""The spend writer: one background thread per engine that owns every slow thing a SQL spend store does.

- Settlements (a finished call's spend, replacing its reservation) are queued by the caller (a deque
  append) and written in batches, one transaction per batch, so no caller ever waits on the store.
- The store's health: a caller whose reservation missed its deadline, or a batch that failed, marks the
  store down (`budgets.store_unreachable`, logged once per outage, counted); while it is down the writer
  probes it with a small write (`expire`, which needs SQLite's write lock like a reservation does) and marks
  it up again when that works.
- While it is down, nothing is dropped: settlements stay queued (up to `max_pending`), or go to the local
  disk spool when one is configured (`spool:` in the budgets file), and are written when the store
  returns. What fits in neither is counted (`budgets.spend_dropped`, one per settlement).
- Periodic work on the same thread: the gauges' refresh (`on_tick`), dropping expired reservations.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable

from spendmeter._contain import recovered, report
from spendmeter.budgets.spend import Settlement, SpendStore
from spendmeter.budgets.spool import Spool

log = logging.getLogger("spendmeter")

DOWN = "budgets.store_unreachable"
DROPPED = "budgets.spend_dropped"
BATCH = 500


class SpendWriter:
    def __init__(
        self,
        store: SpendStore,
        *,
        spool: Spool | None = None,
        max_pending: int = 100_000,
        on_tick: Callable[[], None] | None = None,
        tick_s: float = 1.0,
        probe_s: float = 0.25,
        on_health: Callable[[bool], None] | None = None,
    ) -> None:
        self.store = store
        self.spool = spool
        self.max_pending = max_pending
        self.on_tick = on_tick
        self.tick_s = tick_s
        self.probe_s = probe_s
        self.on_health = on_health
        self.up = True
        self.written = 0
        self.spooled = 0
        self.dropped = 0
        self._closed = False
        self._spool_waiting = spool is not None  # a previous run may have left lines there
        self._fresh()
        self._start()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (w := ref()) is not None and w._fresh())

    def _fresh(self) -> None:
        """Also in a forked child: the parent's queue is the parent's to write, its thread stayed there."""
        self._pending: deque[Settlement] = deque()
        self._busy = 0  # settlements taken off the queue and not yet written
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        with self._idle:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="spendmeter-budgets", daemon=True)
                self._thread.start()

    # -- callers -------------------------------------------------------------------------------------
    def put(self, settlement: Settlement) -> None:
        """Never blocks, never raises."""
        if self._closed or len(self._pending) >= self.max_pending:
            self._overflow([settlement])
            return
        self._pending.append(settlement)
        if len(self._pending) == 1 or len(self._pending) >= BATCH:
            self._wake.set()
        if self._thread is None:  # a forked child: start its own writer
            self._start()

    def mark_down(self, why: str) -> None:
        """A caller saw the store fail or miss its deadline: decide without it until a probe succeeds."""
        if self.up:
            self.up = False
            report(DOWN, exc_info=False)
            log.info("spendmeter budgets: the spend store %r is unreachable (%s); deciding without it", self.store,
                     why)  # fmt: skip
            if self.on_health is not None:
                self.on_health(False)
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending) + self._busy

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until what was queued before is written (or the store is down). True when it was."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self.pending and self.up and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
        return not self.pending

    def close(self, timeout: float = 5.0) -> bool:
        """Write what is queued (spool it if the store is down), stop the thread."""
        self.flush(timeout)
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if self._pending:
            self._overflow(list(self._pending))
            self._pending.clear()
        return thread is None or not thread.is_alive()

    # -- the thread -----------------------------------------------------------------------------------
    def _overflow(self, settlements: list[Settlement]) -> None:
        kept = 0
        if self.spool is not None:
            try:
                kept = self.spool.append(settlements)
            except OSError:
                log.debug("spendmeter: writing the spend spool failed", exc_info=True)
            self.spooled += kept
            self._spool_waiting = self._spool_waiting or kept > 0
        lost = len(settlements) - kept
        if lost:
            self.dropped += lost
            report(DROPPED, lost, exc_info=False)

    def _run(self) -> None:
        next_tick = next_expire = 0.0
        while not self._closed:
            self._wake.wait(self.tick_s if self.up else self.probe_s)
            self._wake.clear()
            now = time.monotonic()
            if not self.up:
                self._probe()
            if self.up:
                if self._spool_waiting:
                    self._replay()
                self._drain()
            if self.up and now >= next_expire:
                self._safely(lambda: self.store.expire(time.time()))
                next_expire = now + 30.0
            if self.on_tick is not None and now >= next_tick:
                self._safely(self.on_tick)
                next_tick = now + self.tick_s
            with self._idle:
                self._idle.notify_all()
        if self.up:
            self._drain()

    def _safely(self, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception as exc:
            self.mark_down(type(exc).__name__)

    def _probe(self) -> None:
        try:
            self.store.expire(time.time())
        except Exception:
            return
        self.up = True
        recovered(DOWN)
        if self.on_health is not None:
            self.on_health(True)

    def _drain(self) -> None:
        pending = self._pending
        while pending and self.up:
            batch: list[Settlement] = []
            while pending and len(batch) < BATCH:
                batch.append(pending.popleft())
            self._busy = len(batch)
            try:
                self.store.settle(batch)
            except Exception as exc:
                self.mark_down(type(exc).__name__)
                # Back in front, in order; to the spool when one is configured (it survives a restart).
                if self.spool is not None:
                    self._overflow(batch)
                else:
                    pending.extendleft(reversed(batch))
                    if len(pending) > self.max_pending:
                        self._overflow([pending.pop() for _ in range(len(pending) - self.max_pending)])
                self._busy = 0
                if self.spool is not None and pending:
                    rest = list(pending)
                    pending.clear()
                    self._overflow(rest)
                return
            self._busy = 0
            self.written += len(batch)

    def _replay(self) -> None:
        assert self.spool is not None
        for path, settlements in self.spool.claim():
            try:
                self.store.settle(settlements)  # one transaction: the whole file lands, or none of it
            except Exception as exc:
                self.mark_down(type(exc).__name__)
                return  # the file stays; the next round replays it
            self.spool.done(path)
            self.written += len(settlements)
        self._spool_waiting = False
