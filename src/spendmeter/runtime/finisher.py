"""Finishing calls off the caller's thread: pricing, labels, metrics, span attributes and end, the ledger and
budget spend run on one background thread, in batches, never on the thread that made the LLM call.

The caller's side is a `deque.append` (and, once per batch, waking the thread). The thread waits
`delay_s` after the first call of a batch so a batch gathers, then finishes everything queued, in order.

Every reader of what calls produced sees everything finished before it asked: `/metrics` (a collector in
the sink's registry), the JSON API, `CollectingSink.calls`, a blocking budget's check, `shutdown()` and
`spendmeter.flush()` call `flush()` first, which finishes what is queued on the reader's own thread and
waits for the batch in progress. Nothing is dropped: a queue longer than `max_pending` is finished by the
caller that finds it so (back-pressure instead of loss), and a thread that cannot start (interpreter
shutdown) means the caller finishes inline. What a hard crash (SIGKILL, segfault) can lose is what was
queued: at most `delay_s` of calls plus the batch in progress; a normal exit flushes (`atexit`).

`mode = "inline"` finishes every call on the caller's thread as it ends (serverless hosts that freeze the
process between requests, or debugging).

This module is a leaf: the work itself is given by the recorder (`process`).
"""

from __future__ import annotations

import atexit
import collections
import os
import threading
import time
from collections.abc import Callable
from typing import Any

Mode = str  # "background" | "inline"
MODES = ("background", "inline")
DEFAULT_DELAY_S = 0.02
DEFAULT_MAX_PENDING = 20_000


class Finisher:
    """A FIFO of finished-but-not-yet-processed calls and the one thread that processes them."""

    def __init__(
        self,
        process: Callable[[Any], None] | None = None,
        *,
        delay_s: float = DEFAULT_DELAY_S,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.process = process  # set by the recorder, which owns the work
        self.delay_s = delay_s
        self.max_pending = max_pending
        self.mode: Mode = "background"
        self._queue: collections.deque[Any] = collections.deque()
        self._work = threading.RLock()  # held while items are processed: flush() waits on it
        self._wake = threading.Event()
        self._signalled = False
        self._draining: int | None = None  # the thread inside _drain(), if any
        self._thread: threading.Thread | None = None

    # -- the caller's side ---------------------------------------------------------------------------------
    def submit(self, item: Any) -> None:
        """Queue one item for the background thread, or process it now (inline mode, a long queue, no
        thread). Never raises into the caller beyond what `process` itself contains."""
        queue = self._queue
        queue.append(item)
        if self.mode != "background" or len(queue) > self.max_pending or not self._running():
            self.flush()
            return
        if not self._signalled:  # once per batch: a racy read is harmless (the thread re-checks the queue)
            self._signalled = True
            self._wake.set()

    def enqueue_quietly(self, item: Any) -> None:
        """Queue without waking the thread: for GC finalizers, which must take no lock (one of ours may be
        held by the code GC interrupted). Picked up by the next batch or flush."""
        self._queue.append(item)

    def pending(self) -> int:
        return len(self._queue)

    def flush(self) -> None:
        """Process everything queued before this call, on this thread, after the batch in progress."""
        if not self._queue and self._thread is None:
            return
        if self._draining == threading.get_ident():
            return  # a sink, while it takes a call, asked (a budget refreshing its gauges): no re-entry
        with self._work:
            self._drain()

    # -- the background side -------------------------------------------------------------------------------
    def _drain(self) -> None:
        """Process the queue until it is empty. Called with `_work` held."""
        queue, process = self._queue, self.process
        self._draining = threading.get_ident()
        try:
            while True:
                try:
                    item = queue.popleft()
                except IndexError:
                    return
                if process is not None:
                    process(item)
        finally:
            self._draining = None

    def _running(self) -> bool:
        # A forked child has `_thread` None (`_after_fork`), so no pid check is needed on this path.
        return self._thread is not None or self._start()

    def _start(self) -> bool:
        with self._work:
            if self._thread is not None:
                return True
            thread = threading.Thread(target=self._run, name="spendmeter-finisher", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # interpreter shutting down: the caller finishes inline
                return False
            self._thread = thread
            return True

    def _run(self) -> None:
        wake, sleep = self._wake, time.sleep
        while True:
            wake.wait()
            if self.delay_s > 0:
                sleep(self.delay_s)  # let a batch gather
            self._signalled = False
            wake.clear()
            try:
                with self._work:
                    self._drain()
            except BaseException:  # pragma: no cover - process() contains its own failures
                pass

    def _after_fork(self) -> None:
        """In a forked child: the parent's thread is gone and its queue is the parent's to finish."""
        self._queue = collections.deque()
        self._work = threading.RLock()
        self._wake = threading.Event()
        self._signalled = False
        self._draining = None
        self._thread = None


FINISHER = Finisher()


def flush() -> None:
    """Finish every call queued so far (what readers call before they read)."""
    FINISHER.flush()


def set_mode(mode: Mode) -> None:
    if mode not in MODES:
        raise ValueError(f"finish mode must be one of {MODES}, not {mode!r}")
    FINISHER.mode = mode
    if mode == "inline":
        FINISHER.flush()


atexit.register(flush)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=FINISHER._after_fork)
