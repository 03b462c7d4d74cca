"""Budget gauges for Prometheus, set from the spend store.

Plain gauges (not a custom collector) because prometheus_client's multiprocess mode ignores custom
collectors. Every gauge uses multiprocess_mode="livemostrecent":
- every worker reads the same shared store, so the right value is simply the latest one read; the worker
  that serves a scrape refreshes first, so its values are the newest and win;
- "max" would be wrong: after a period rolls over, a worker that has not refreshed yet (or a dead one)
  still holds yesterday's high spend, and max would keep showing it; "sum" would count the store N times;
- the "live" variant drops the values of workers that exited, once the server calls
  `prometheus_client.multiprocess.mark_process_dead(pid)` (gunicorn: the `child_exit` hook).
In single-process mode the mode is ignored and these are ordinary gauges.

Per-key budgets (one spend per user, feature, ...) export only keys at or above the lowest warn level,
at most `gauge_max_keys` of them by highest spend, so 100k users cost at most that many series. A key that
leaves that set (new period, cap) is removed; in multiprocess mode, where prometheus_client cannot remove a
series, its spent and utilization are set to 0 instead, which never fires an alert.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from spendmeter.budgets.config import Budget
from spendmeter.budgets.periods import PeriodWindow
from spendmeter.budgets.store import NANO_PER_USD
from spendmeter.telemetry import contract as c

MODE = "livemostrecent"

# (budget, its current window, limit in nano-USD, [(key, spent nano-USD)], keys at or over the limit)
Snapshot = Sequence[tuple[Budget, PeriodWindow, int, Sequence[tuple[str, int]], int]]


def _multiprocess() -> bool:
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ


class BudgetGauges:
    """The budget gauges of one registry. Create them once per registry: a later `init()` hands the same
    object to its new engine (which calls `reset()`), where registering the names again would fail."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

        def gauge(metric: c.Metric) -> Gauge:
            return Gauge(metric.name, metric.help, metric.labels, registry=registry, multiprocess_mode=MODE)

        self.limit = gauge(c.BUDGET_LIMIT)
        self.spent = gauge(c.BUDGET_SPENT)
        self.utilization = gauge(c.BUDGET_UTILIZATION)
        self.warn = gauge(c.BUDGET_WARN)
        self.period_end = gauge(c.BUDGET_PERIOD_END)
        self.over_limit = gauge(c.BUDGET_OVER_LIMIT)
        self.blind = gauge(c.BUDGET_BLIND)
        self._multiprocess = _multiprocess()
        self._exported: set[tuple[str, ...]] = set()  # per-key label tuples currently shown

    def update(self, snapshot: Snapshot) -> None:
        shown: set[tuple[str, ...]] = set()
        for budget, win, limit_nano, rows, over in snapshot:
            for level in budget.warn_at:
                self.warn.labels(budget.name, f"{level:g}").set(level)
            self.period_end.labels(budget.name, budget.period).set(win.end.timestamp())
            self.over_limit.labels(budget.name).set(over)
            limit_usd = float(budget.limit_usd)
            for key, nano in rows:
                labels = (budget.name, budget.scope, key, budget.period)
                shown.add(labels)
                self.limit.labels(*labels).set(limit_usd)
                self.spent.labels(*labels).set(nano / NANO_PER_USD)
                self.utilization.labels(*labels).set(nano / limit_nano)
        for labels in self._exported - shown:
            self._drop(labels)
        self._exported = shown

    def set_blind(self, budgets: Sequence[Budget], blind: bool) -> None:
        """Which budgets decide without their store right now (all of an engine's share one store). Cheap
        (no I/O): set from the caller's thread when a check finds the store down."""
        for budget in budgets:
            mode = budget.on_store_error if budget.action == "block" else "n/a"
            self.blind.labels(budget.name, mode).set(1 if blind else 0)

    def reset(self) -> None:
        """Forget every series (a new engine, possibly with other budgets, takes over these gauges)."""
        if self._multiprocess:  # cannot remove there: zero what we showed instead
            for labels in self._exported:
                self._drop(labels)
        else:
            for gauge in self.describe():
                gauge.clear()
        self._exported = set()

    def _drop(self, labels: tuple[str, ...]) -> None:
        if self._multiprocess:
            self.spent.labels(*labels).set(0)
            self.utilization.labels(*labels).set(0)
            return
        for gauge in (self.limit, self.spent, self.utilization):
            try:
                gauge.remove(*labels)
            except KeyError:  # pragma: no cover - already gone
                pass

    def describe(self) -> list[Any]:
        return [self.limit, self.spent, self.utilization, self.warn, self.period_end, self.over_limit, self.blind]
