"""The background batch writer: rows in on the caller's thread (a queue put, a few microseconds), written by
one thread in batches, so the caller never does I/O.

- A batch is written when `batch_size` rows are waiting, `flush_interval_s` after the oldest waiting row,
  on `flush()` and on `close()`.
- The queue is bounded (`max_queue`). When it is full (the database is down or too slow) new rows are
  dropped, not waited for: counted in `dropped` and reported as `<kind>.dropped`, one per row. Rows put after
  `close()` are dropped the same way.
- A batch whose write fails is retried once after `reset()` (a fresh connection); if that fails too its rows
  are lost: counted in `failed_rows` and reported as `<kind>.write_failed`, one per row. The next successful
  write ends the outage (`recovered`).
- After `fork()` the child starts empty: rows queued in the parent are the parent's to write. Its writer
  thread starts with its first row.

Errors go through `spendmeter._contain` (logged once per outage, counted per kind); nothing here raises
into the caller.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from spendmeter._contain import recovered, report

log = logging.getLogger("spendmeter")

RowT = TypeVar("RowT")


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Signal:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_STOP = _Signal("stop")
_DUE = _Signal("due")  # the oldest waiting row has waited flush_interval_s


class BatchWriter(Generic[RowT]):
    """Writes rows with `write(rows)` from one background thread. `reset()`, if given, runs before the retry
    of a failed batch (reconnect)."""

    def __init__(
        self,
        write: Callable[[list[RowT]], None],
        *,
        kind: str,
        reset: Callable[[], None] | None = None,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        thread_name: str | None = None,
    ) -> None:
        if max_queue < 1 or batch_size < 1 or flush_interval_s < 0:
            raise ValueError("max_queue and batch_size must be >= 1, flush_interval_s >= 0")
        self._write_rows = write
        self._reset = reset
        self.kind = kind
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.thread_name = thread_name or f"spendmeter-{kind}"
        self.dropped = 0  # rows refused: queue full, or put after close()
        self.written = 0
        self.failed_rows = 0  # rows lost with a batch that failed twice
        self._drop_kind = f"{kind}.dropped"
        self._fail_kind = f"{kind}.write_failed"
        self._dropping = False
        self._closed = False
        self._start_lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None
        self._start()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (w := ref()) is not None and w._after_fork())

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
        if self._closed:
            self._drop()
            return False
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self._drop()
            return False
        if self._dropping:
            self._dropping = False
            recovered(self._drop_kind)
        if self._thread is None:  # after a fork: the writer thread did not come along
            self._start()
        return True

    def _drop(self) -> None:
        self.dropped += 1  # a lost increment under a race only undercounts drops; no lock on this path
        self._dropping = True
        report(self._drop_kind, 1, exc_info=False)

    def flush(self, timeout: float = 10.0) -> bool:
        """Write every row queued before this call. True when done within `timeout`."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return self._queue.empty()
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Write what is queued and stop the writer. True when it stopped within `timeout`."""
        if self._closed:
            return True
        self._closed = True
        thread = self._thread
        if thread is None or not thread.is_alive():
            return self._queue.empty()
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("spendmeter %s: could not stop the writer within %.0fs", self.kind, timeout)
            return False
        thread.join(timeout)
        return not thread.is_alive()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._closed:
                return
            thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread = thread
            thread.start()

    def _after_fork(self) -> None:
        self._queue = queue.Queue(self.max_queue)
        self._start_lock = threading.Lock()
        self._thread = None

    # -- the writer thread --------------------------------------------------------------------------
    def _run(self) -> None:
        q = self._queue
        batch: list[RowT] = []
        deadline = 0.0
        size, interval = self.batch_size, self.flush_interval_s
        while True:
            try:
                item = q.get(timeout=max(0.0, deadline - time.monotonic()) if batch else None)
            except queue.Empty:
                item = _DUE
            if item is not _DUE and item is not _STOP and type(item) is not _Flush:  # a row
                if not batch:
                    deadline = time.monotonic() + interval
                batch.append(item)
                if len(batch) < size:
                    continue
            if batch:
                self._write(batch)
                batch = []
            if type(item) is _Flush:
                item.done.set()
            elif item is _STOP:
                return

    def _write(self, rows: list[RowT]) -> None:
        try:
            self._write_rows(rows)
        except Exception:
            log.debug("spendmeter %s: writing %d rows failed; retrying once", self.kind, len(rows), exc_info=True)
            try:
                if self._reset is not None:
                    self._reset()
                self._write_rows(rows)
            except Exception:
                self.failed_rows += len(rows)
                report(self._fail_kind, len(rows))  # in the except block: the log carries the traceback
                return
        self.written += len(rows)
        recovered(self._fail_kind)
