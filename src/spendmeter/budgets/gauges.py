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
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from spendmeter.budgets.config import Budget
from spendmeter.budgets.periods import PeriodWindow
from spendmeter.budgets.store import NANO_PER_USD

MODE = "livemostrecent"
KEY_LABELS = ("budget", "scope", "key", "period")

# (budget, its current window, limit in nano-USD, [(key, spent nano-USD)], keys at or over the limit)
Snapshot = Sequence[tuple[Budget, PeriodWindow, int, Sequence[tuple[str, int]], int]]


_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, BudgetGauges] = weakref.WeakKeyDictionary()
_BY_REGISTRY_LOCK = threading.Lock()


def gauges_for(registry: CollectorRegistry) -> BudgetGauges:
    """The budget gauges of `registry`, created once: a second init() (a new engine) reuses and resets them,
    where registering the same names again would fail with "Duplicated timeseries"."""
    with _BY_REGISTRY_LOCK:
        gauges = _BY_REGISTRY.get(registry)
        if gauges is None:
            gauges = _BY_REGISTRY[registry] = BudgetGauges(registry)
        else:
            gauges.reset()
        return gauges


def _multiprocess() -> bool:
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ or "prometheus_multiproc_dir" in os.environ


class BudgetGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str, labels: Sequence[str]) -> Gauge:
            return Gauge(name, doc, labels, registry=registry, multiprocess_mode=MODE)

        self.limit = gauge("llm_budget_limit_usd", "Declared budget limit in USD.", KEY_LABELS)
        self.spent = gauge("llm_budget_spent_usd", "Spend in the current budget period in USD.", KEY_LABELS)
        self.utilization = gauge(
            "llm_budget_utilization_ratio", "Spend divided by the limit in the current period.", KEY_LABELS
        )
        self.warn = gauge(
            "llm_budget_warn_ratio",
            "Declared warn levels as ratios of the limit (label level = the ratio, e.g. 0.8).",
            ("budget", "level"),
        )
        self.period_end = gauge(
            "llm_budget_period_end_timestamp_seconds",
            "When the current budget period ends (Unix time).",
            ("budget", "period"),
        )
        self.over_limit = gauge(
            "llm_budget_users_over_limit",
            "Keys (users, features, ...) at or over the limit this period.",
            ("budget",),
        )
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
        return [self.limit, self.spent, self.utilization, self.warn, self.period_end, self.over_limit]
