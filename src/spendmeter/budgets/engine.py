"""The budget engine: block before a call when a blocking budget is exhausted, add spend after it.

Which budgets a call counts against
- `global`: every call (attributed or not), key `all`.
- `user` / `feature` / `agent`: the call's attribution value is the key. A call without that value does not
  count against the per-key budget at all (it still counts for global budgets): lumping every unattributed
  call into one `unknown` user would make that pseudo-user hit its limit and block unrelated traffic.
- `model`: the requested model name (else the deployment, else the model the response named, else
  `unknown`). The requested name is used, not the dated snapshot the provider answers with, so the check
  before the call and the spend after it land on the same key.
- `match` narrows any scope to calls whose labels equal one of the listed values.
- Keys are the values every output shows (`call.who`): with `SPENDMETER_HASH_USERS` a user budget's key is
  the hashed id, so neither the store, the gauges nor `/api/budgets` ever hold the raw one.

Time: both `check` and `on_call` use the engine's clock (UTC now unless injected), so spend lands in the
period in which the cost became known. The check-then-spend pair is not atomic: N calls in flight at
once can each pass the check and overshoot a limit by up to their combined cost.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendmeter.budgets.config import Budget, BudgetConfig
from spendmeter.budgets.periods import PeriodWindow, window
from spendmeter.budgets.store import SpendStore, from_nano, open_store, to_nano
from spendmeter.call import UNKNOWN, Call
from spendmeter.errors import BudgetExceeded
from spendmeter.errors import plain_usd as _plain

log = logging.getLogger("spendmeter")

GLOBAL_KEY = "all"
Clock = Callable[[], datetime]
CostEstimator = Callable[[Call], Decimal | None]
_ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    name: str
    scope: str
    key: str
    period: str
    period_start: datetime
    period_end: datetime
    spent: Decimal
    limit: Decimal
    utilization: float
    action: str
    warn_at: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly: money as strings (exact), times as ISO 8601."""
        return {
            "name": self.name,
            "scope": self.scope,
            "key": self.key,
            "period": self.period,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "spent_usd": _plain(self.spent),
            "limit_usd": _plain(self.limit),
            "utilization": self.utilization,
            "action": self.action,
            "warn_at": list(self.warn_at),
        }


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _model_of(call: Call) -> str:
    return call.request_model or call.deployment or call.response_model or UNKNOWN


def _label(call: Call, name: str, who: Any) -> str | None:
    if name == "model":
        return _model_of(call)
    if name == "provider":
        return call.provider
    return getattr(who, name)


class BudgetEngine:
    """Holds the config, the spend store and (once registered) the gauges. Thread-safe.

    The pipeline's budget guard (`check`) and one of its sinks (`on_call`, the spend)."""

    kind = "budgets"

    def __init__(
        self,
        config: BudgetConfig,
        clock: Clock | None = None,
        *,
        store: SpendStore | None = None,
        estimate_cost: CostEstimator | None = None,
        gauge_refresh_interval_s: float = 1.0,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or _utc_now
        self.store: SpendStore = store if store is not None else open_store(config.store_path)
        if config.store_path is None and store is None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            log.warning(
                "spendmeter budgets: several worker processes but store: memory; each worker counts only "
                "its own spend. Use store: sqlite:///spend.db (in %s) to share it",
                config.file or "the budgets file",
            )
        # Pre-call estimate for `estimate: true` budgets: the most this call can cost, or None if unknown.
        self.estimate_cost = estimate_cost
        self.gauge_refresh_interval_s = gauge_refresh_interval_s
        self._tz = config.tz
        self._limits_nano = {b.name: to_nano(b.limit_usd) for b in config.budgets}
        self._blocking = tuple(b for b in config.budgets if b.action == "block")
        self._gauges: Any = None
        self._last_refresh = float("-inf")
        self._refresh_lock = threading.Lock()

    # -- which budgets, which key -------------------------------------------------------------------
    @staticmethod
    def scope_key(budget: Budget, call: Call) -> str | None:
        """The key this call is counted under for `budget`, or None if the budget does not apply.

        `match` compares the values as the application gave them (what the budgets file names); the key is
        the value as every output shows it (`call.who`: the user hashed when configured, long values
        shortened), so gauges, `/api/budgets` and the spend store never hold a raw user id."""
        for name, accepted in budget.match.items():
            if _label(call, name, call.attribution) not in accepted:
                return None
        if budget.scope == "global":
            return GLOBAL_KEY
        return _label(call, budget.scope, call.who)

    def window(self, budget: Budget, now: datetime | None = None) -> PeriodWindow:
        return window(budget.period, now or self.clock(), self._tz)

    # -- before the call ----------------------------------------------------------------------------
    def check(self, call: Call) -> None:
        """Raise `BudgetExceeded` if a blocking budget that applies to this call has no room left."""
        if not self._blocking:
            return
        now = self.clock()
        estimate: Decimal | None = None
        estimated = False
        for budget in self._blocking:
            key = self.scope_key(budget, call)
            if key is None:
                continue
            win = self.window(budget, now)
            spent = self.store.get(budget.name, key, win.key)
            limit = self._limits_nano[budget.name]
            if spent >= limit:
                raise BudgetExceeded(budget.name, budget.scope, key, from_nano(spent), budget.limit_usd, win.end)
            if budget.estimate and self.estimate_cost is not None:
                if not estimated:  # price the call at most once, only if some budget asks for it
                    estimate, estimated = self.estimate_cost(call), True
                if estimate is not None and spent + to_nano(estimate) > limit:
                    raise BudgetExceeded(
                        budget.name,
                        budget.scope,
                        key,
                        from_nano(spent),
                        budget.limit_usd,
                        win.end,
                        estimated=estimate,
                    )

    # -- after the call -----------------------------------------------------------------------------
    def on_call(self, call: Call) -> None:
        """Sink interface: add the finished call's cost to every budget it counts against."""
        if call.status == "blocked":
            return  # nothing was sent, nothing was billed
        nano = to_nano(call.cost_usd)
        if nano <= 0:
            return  # unpriced or free: no row to touch
        now = self.clock()
        items = []
        for budget in self.config.budgets:
            key = self.scope_key(budget, call)
            if key is not None:
                items.append(((budget.name, key, self.window(budget, now).key), nano))
        self.store.add(items)
        due = time.monotonic() - self._last_refresh >= self.gauge_refresh_interval_s
        if self._gauges is not None and due:
            self.refresh_gauges()

    # -- reading ------------------------------------------------------------------------------------
    def spent(self, budget_name: str, key: str = GLOBAL_KEY) -> Decimal:
        """Spend of one budget key in the current period."""
        budget = self._budget(budget_name)
        return from_nano(self.store.get(budget.name, key, self.window(budget).key))

    def status(self, max_keys: int | None = None) -> list[BudgetStatus]:
        """Current period of every budget: one row for a global budget, the top spenders for per-key ones."""
        max_keys = self.config.gauge_max_keys if max_keys is None else max_keys
        now = self.clock()
        out: list[BudgetStatus] = []
        for budget in self.config.budgets:
            win = self.window(budget, now)
            if budget.per_key:
                rows = self.store.top(budget.name, win.key, 1, max_keys)
            else:
                rows = [(GLOBAL_KEY, self.store.get(budget.name, GLOBAL_KEY, win.key))]
            limit = self._limits_nano[budget.name]
            for key, nano in rows:
                out.append(
                    BudgetStatus(
                        budget.name,
                        budget.scope,
                        key,
                        budget.period,
                        win.start,
                        win.end,
                        from_nano(nano),
                        budget.limit_usd,
                        nano / limit,
                        budget.action,
                        budget.warn_at,
                    )
                )
        return out

    # -- gauges -------------------------------------------------------------------------------------
    def register_gauges(self, gauges: Any) -> None:
        """Take over a registry's `BudgetGauges` (new, or the previous engine's after a re-init) and fill them."""
        gauges.reset()
        self._gauges = gauges
        self.refresh_gauges()

    @property
    def gauges(self) -> Any:
        return self._gauges

    def refresh_gauges(self) -> None:
        """Set every gauge from the store (after spend and at scrape time). No-op until registered."""
        if self._gauges is None:
            return
        with self._refresh_lock:
            now = self.clock()
            snapshot = []
            for budget in self.config.budgets:
                win = self.window(budget, now)
                limit = self._limits_nano[budget.name]
                if budget.per_key:
                    floor = -(-limit * _ratio_nano(budget.warn_at[0]) // 10**9) if budget.warn_at else limit
                    rows = self.store.top(budget.name, win.key, max(floor, 1), self.config.gauge_max_keys)
                    over = self.store.count_at_least(budget.name, win.key, limit)
                else:
                    spent = self.store.get(budget.name, GLOBAL_KEY, win.key)
                    rows = [(GLOBAL_KEY, spent)]
                    over = int(spent >= limit)
                snapshot.append((budget, win, limit, rows, over))
            self._gauges.update(snapshot)
            self._last_refresh = time.monotonic()

    # -- housekeeping -------------------------------------------------------------------------------
    def prune(self, keep_previous: int = 1) -> int:
        """Forget spend older than the current period and `keep_previous` periods before it."""
        removed = 0
        now = self.clock()
        for budget in self.config.budgets:
            win = self.window(budget, now)
            for _ in range(keep_previous):
                win = self.window(budget, win.start.replace(microsecond=0) - _ONE_SECOND)
            removed += self.store.prune(budget.name, win.key)
        return removed

    def close(self) -> None:
        self.store.close()

    def _budget(self, name: str) -> Budget:
        for budget in self.config.budgets:
            if budget.name == name:
                return budget
        raise KeyError(name)


def _ratio_nano(ratio: float) -> int:
    """A warn ratio as an exact integer fraction of 10**9 (0.8 -> 800_000_000), so thresholds are integers."""
    return int(Decimal(str(ratio)) * 10**9)
