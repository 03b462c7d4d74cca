"""Contract: the public Python API. Changing it needs a migration note in the README."""

from __future__ import annotations

import spendmeter


def test_public_api_is_pinned():
    assert sorted(spendmeter.__all__) == sorted([
        "Attribution", "BudgetExceeded", "Call", "ConfigError", "Cost", "Sink", "Unpriced", "Usage", "__version__",
        "add_sink", "attribute", "flush", "init", "instrument", "remove_sink", "shutdown", "uninstrument",
    ])
    for name in spendmeter.__all__:
        assert getattr(spendmeter, name) is not None


def test_budget_exceeded_is_an_exception_with_its_facts():
    exc_type = spendmeter.BudgetExceeded
    assert issubclass(exc_type, Exception)
    from spendmeter.budgets import BudgetExceeded

    assert exc_type is BudgetExceeded
