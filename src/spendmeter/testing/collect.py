"""A sink that keeps every finished `Call` in memory, for tests to assert on.

    sink = CollectingSink()
    spendmeter.add_sink(sink)
    ...                                   # the code under test makes one LLM call
    call = sink.one()                     # fails, listing what was collected, unless exactly one finished
    assert call.attribution.user == "alice"
"""

from __future__ import annotations

import threading

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spendmeter.call import Call
from spendmeter.runtime import finisher

__all__ = ["CollectingSink", "FlushingSpanExporter"]


class FlushingSpanExporter(InMemorySpanExporter):
    """OpenTelemetry's in-memory span exporter, except that reading the spans first finishes the calls still
    queued for spendmeter's background finisher (whose spans are ended there)."""

    def get_finished_spans(self):  # type: ignore[no-untyped-def]
        finisher.flush()
        return super().get_finished_spans()


class CollectingSink:
    """Collects finished calls in `calls`, in the order they finished. Reading `calls` first finishes the
    calls still queued for the background finisher, so a test sees every call that ended before it looks."""

    def __init__(self) -> None:
        self._calls: list[Call] = []
        # Calls are finished on the finisher thread, or on a reader's thread when it flushes.
        self._lock = threading.Lock()

    @property
    def calls(self) -> list[Call]:
        finisher.flush()
        return self._calls

    def on_call(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def one(self) -> Call:
        """The only finished call; raises `AssertionError` naming the count (and the calls) otherwise."""
        finisher.flush()
        with self._lock:
            calls = list(self._calls)
        # An explicit raise rather than `assert`: the check must hold under `python -O` too.
        if len(calls) != 1:
            raise AssertionError(f"expected exactly one finished call, got {len(calls)}: {calls}")
        return calls[0]
