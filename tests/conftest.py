"""Shared fixtures: a sink that collects finished calls, and a clean recorder around each test."""

from __future__ import annotations

import os
import threading

import pytest

from spendmeter.call import Call
from spendmeter.recorder import RECORDER

IN_CI = os.environ.get("CI", "").lower() == "true"


class CollectingSink:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def on_call(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def one(self) -> Call:
        assert len(self.calls) == 1, f"expected exactly one finished call, got {len(self.calls)}: {self.calls}"
        return self.calls[0]


_WIRING = ("sinks", "span_sink", "pricer", "budgets", "usage_hosts", "capture_content", "on_internal_error")


@pytest.fixture
def recorder_state():
    """Save and restore the recorder's wiring so tests can set sinks/pricer/budgets freely."""
    saved = {name: getattr(RECORDER, name) for name in _WIRING}
    RECORDER.drain()
    yield RECORDER
    RECORDER.drain()
    for name, value in saved.items():
        setattr(RECORDER, name, value)


@pytest.fixture
def collected(recorder_state) -> CollectingSink:
    sink = CollectingSink()
    recorder_state.sinks = [sink]
    recorder_state.span_sink = None
    recorder_state.budgets = None
    return sink
