"""A sink that keeps every finished `Call` in memory, for tests to assert on.

    sink = CollectingSink()
    spendmeter.add_sink(sink)
    ...                                   # the code under test makes one LLM call
    call = sink.one()                     # fails, listing what was collected, unless exactly one finished
    assert call.attribution.user == "alice"
"""

from __future__ import annotations

import threading

from spendmeter.call import Call

__all__ = ["CollectingSink"]


class CollectingSink:
    """Collects finished calls in `calls`, in the order they finished."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        # Calls finish on whatever thread ended them (an async loop, a worker pool, a stream's finalizer drain).
        self._lock = threading.Lock()

    def on_call(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def one(self) -> Call:
        """The only finished call; raises `AssertionError` naming the count (and the calls) otherwise."""
        with self._lock:
            calls = list(self.calls)
        # An explicit raise rather than `assert`: the check must hold under `python -O` too.
        if len(calls) != 1:
            raise AssertionError(f"expected exactly one finished call, got {len(calls)}: {calls}")
        return calls[0]
