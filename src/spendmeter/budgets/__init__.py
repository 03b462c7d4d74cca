"""Budgets: declared spend limits per period, checked before each call and fed by each finished call.

    config = load_budgets("budgets.yaml")
    engine = BudgetEngine(config)
    engine.check(call)      # before the request: raises BudgetExceeded when a blocking budget is exhausted
    engine.on_call(call)    # after: adds the call's cost to every budget it counts against

See docs/budgets.md for the file format, the stores and the gauges.
"""

from __future__ import annotations

from spendmeter.budgets.config import Budget, BudgetConfig, load_budgets, parse_budgets
from spendmeter.budgets.engine import BudgetEngine, BudgetExceeded, BudgetStatus
from spendmeter.budgets.store import MemoryStore, SpendStore, SQLiteStore, open_store

__all__ = [
    "Budget",
    "BudgetConfig",
    "BudgetEngine",
    "BudgetExceeded",
    "BudgetStatus",
    "MemoryStore",
    "SQLiteStore",
    "SpendStore",
    "load_budgets",
    "open_store",
    "parse_budgets",
]
