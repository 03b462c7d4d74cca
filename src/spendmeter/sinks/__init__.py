"""Sinks read finished `Call` records and write them somewhere (metrics, spans, ledger, budget spend)."""

from __future__ import annotations

from typing import Protocol

from spendmeter.call import Call


class Sink(Protocol):
    def on_call(self, call: Call) -> None:
        """Take one finished call. Called once per call, from the thread that finished it."""
