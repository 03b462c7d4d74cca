"""The background batch writer: rows in on the caller's thread (a queue put, a few microseconds), written by
one thread in batches, so the caller never does I/O.

- A batch is written when `batch_size` rows are waiting, `flush_interval_s` after the oldest waiting row,
  on `flush()` and on `close()`. A writer that has fallen behind (more than `batch_size` rows waiting when
  it starts a batch) takes up to `max_batch_size` of them in one write (group commit: fewer, larger
  transactions when the database is the bottleneck; the default is `batch_size`, i.e. never more).
- The queue is bounded (`max_queue`). When it is full (the database is down or too slow) new rows are
  dropped, not waited for: counted in `dropped` and reported as `<kind>.dropped`, one per row. Rows put after
  `close()` are dropped the same way.
- A batch whose write fails is retried once after `reset()` (a fresh connection); if that fails too its rows
  are lost: counted in `failed_rows` and reported as `<kind>.write_failed`, one per row. `write(rows)` may
  return how many single rows it refused itself (the ledger splits a batch the database refuses for its
  data, so only the offending rows are lost): those count in `failed_rows` too. The next successful
  write ends the outage (`recovered`).
- The queue is a `deque` (an append and a `len()` on the caller's side, well under a microsecond) and the
  writer sleeps on an `Event` that `put()` sets only when the writer has something to do (the first waiting
  row, a full batch): `queue.Queue` costs a lock round trip per row on both sides.
- After `fork()` the child starts empty: rows queued in the parent are the parent's to write. Its writer
  thread starts with its first row.

Errors go through `spendmeter._contain` (logged once per outage, counted per kind); nothing here raises
into the caller.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from spendmeter._contain import recovered, report

log = logging.getLogger("spendmeter")

RowT = TypeVar("RowT")


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Stop:
    __slots__ = ()


_STOP = _Stop()


class BatchWriter(Generic[RowT]):
    """Writes rows with `write(rows)` from one background thread. `reset()`, if given, runs before the retry
    of a failed batch (reconnect)."""

    def __init__(
        self,
        write: Callable[[list[RowT]], int | None],
        *,
        kind: str,
        reset: Callable[[], None] | None = None,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        thread_name: str | None = None,
        max_batch_size: int | None = None,
    ) -> None:
        if max_queue < 1 or batch_size < 1 or flush_interval_s < 0:
            raise ValueError("max_queue and batch_size must be >= 1, flush_interval_s >= 0")
        if max_batch_size is not None and max_batch_size < batch_size:
            raise ValueError("max_batch_size must be >= batch_size")
        self._write_rows = write
        self._reset = reset
        self.kind = kind
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.max_batch_size = batch_size if max_batch_size is None else max_batch_size
        self.flush_interval_s = flush_interval_s
        self.thread_name = thread_name or f"spendmeter-{kind}"
        self.dropped = 0  # rows refused: queue full, or put after close()
        self.written = 0
        self.failed_rows = 0  # rows lost with a batch that failed twice
        self._drop_kind = f"{kind}.dropped"
        self._fail_kind = f"{kind}.write_failed"
        self._dropping = False
        self._closed = False
        self._fresh_state()
        self._start()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (w := ref()) is not None and w._after_fork())

    def _fresh_state(self) -> None:
        self._items: deque[Any] = deque()  # rows, and the markers of flush() / close() in their place
        self._wake = threading.Event()
        self._lock = threading.Lock()  # starting the thread; counting markers
        self._markers = 0  # flush/close markers queued and not yet reached by the writer
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return (
            f"BatchWriter({self.kind!r}, written={self.written}, dropped={self.dropped}, "
            f"failed_rows={self.failed_rows}, closed={self._closed})"
        )

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the caller's side --------------------------------------------------------------------------
    def put(self, row: RowT) -> bool:
        """Queue one row; False when it was dropped. Never blocks, never raises."""
        items = self._items
        waiting = len(items)
        if self._closed or waiting >= self.max_queue:  # a racing put may overshoot by a row: harmless
            self._drop()
            return False
        items.append(row)
        if (waiting == 0 or waiting + 1 >= self.batch_size) and not self._wake.is_set():
            self._wake.set()  # the first row starts the interval; a full batch goes now
        if self._dropping:
            self._dropping = False
            recovered(self._drop_kind)
        if self._thread is None:  # after a fork: the writer thread did not come along
            self._start()
        return True

    def _drop(self, n: int = 1) -> None:
        self.dropped += n  # a lost increment under a race only undercounts drops; no lock on this path
        self._dropping = True
        report(self._drop_kind, n, exc_info=False)

    def _mark(self, marker: Any) -> None:
        with self._lock:
            self._markers += 1
            self._items.append(marker)
        self._wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Write every row queued before this call. True when done within `timeout`."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return not self._items
        marker = _Flush()
        self._mark(marker)
        return marker.done.wait(timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Write what is queued and stop the writer. True when it stopped within `timeout`."""
        if self._closed:
            return True
        self._closed = True
        thread = self._thread
        if thread is None or not thread.is_alive():
            return not self._items
        self._mark(_STOP)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("spendmeter %s: the writer did not stop within %.0fs", self.kind, timeout)
            return False
        return True

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread = thread
            thread.start()

    def _after_fork(self) -> None:
        self._fresh_state()  # the parent's rows, locks and thread stay the parent's

    # -- the writer thread --------------------------------------------------------------------------
    def _run(self) -> None:
        items, wake = self._items, self._wake
        size, most, interval = self.batch_size, self.max_batch_size, self.flush_interval_s
        deadline: float | None = None  # when the oldest waiting row is due
        while True:
            wake.clear()  # before looking: a put() from now on wakes the wait below
            waiting = len(items)
            if waiting == 0:
                deadline = None
                wake.wait()
                continue
            now = time.monotonic()
            if deadline is None:
                deadline = now + interval
            if waiting < size and not self._markers and now < deadline:
                wake.wait(deadline - now)
                continue
            batch: list[RowT] = []
            marker: Any = None
            limit = most if waiting > size else size  # behind: take more of what waits, in one write
            while items and len(batch) < limit:
                item = items.popleft()
                if type(item) is _Flush or item is _STOP:
                    marker = item
                    break
                batch.append(item)
            if batch:
                self._write(batch)
            deadline = None
            if marker is None:
                continue
            with self._lock:
                self._markers -= 1
            if marker is _STOP:
                late = sum(1 for item in items if type(item) is not _Flush)  # put() racing with close()
                if late:
                    self._drop(late)
                for item in items:
                    if type(item) is _Flush:
                        item.done.set()
                return
            marker.done.set()

    def _write(self, rows: list[RowT]) -> None:
        try:
            refused = self._write_rows(rows)  # a writer that drops single bad rows returns how many
        except Exception:
            log.debug("spendmeter %s: writing %d rows failed; retrying once", self.kind, len(rows), exc_info=True)
            try:
                if self._reset is not None:
                    self._reset()
                refused = self._write_rows(rows)
            except Exception:
                self.failed_rows += len(rows)
                report(self._fail_kind, len(rows))  # in the except block: the log carries the traceback
                return
        refused = refused if isinstance(refused, int) else 0
        self.written += len(rows) - refused
        if refused:
            self.failed_rows += refused
            report(self._fail_kind, refused, exc_info=False)
            return
        recovered(self._fail_kind)
