"""Answers from the ledger: spend by feature, user, model, agent, provider, conversation and day (`queries`),
read exactly from SQLite or PostgreSQL (`source`), shaped for JSON (`views`); `spendmeter report` and
`spendmeter reconcile` (`cli`, `reconcile`). It reads the ledger's table, never a sink."""

from __future__ import annotations

from spendmeter.analytics.queries import DIMENSIONS, Group, Totals, Window, calls, grouped, total
from spendmeter.analytics.source import LedgerSource, LedgerUnavailable

__all__ = ["DIMENSIONS", "Group", "LedgerSource", "LedgerUnavailable", "Totals", "Window", "calls", "grouped",
           "total"]
