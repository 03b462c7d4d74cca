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
period in which the cost became known.

Reservations: `check` reserves the call's worst case (`estimate_cost(call)`) on every blocking budget it
counts against, in one atomic store step that also decides admission, and `on_call` settles it (the actual
cost replaces the reservation). So N concurrent callers overshoot a limit by at most one call's cost. A call
without a worst case (no `max_tokens`) reserves nothing: it is admitted while spend + reservations are
below the limit, and concurrent ones can each take the last room.

No stall: with a SQL store, `check` waits for the store at most `store_timeout_s` (in a small thread pool),
and `on_call` only queues (`spendmeter.budgets.writer`). A store that fails or misses the deadline is
marked down; until a background probe succeeds, checks decide at once from the local view (last spend
seen, plus what this process spent and reserved since) for `on_store_error: open` budgets, or block for
`closed` ones, and the `llm_budget_blind` gauge is 1.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from spendmeter.budgets.config import Budget, BudgetConfig
from spendmeter.budgets.guard import Reservations
from spendmeter.budgets.periods import PeriodWindow, window
from spendmeter.budgets.spend import Claim, Settlement, SpendKey, clamp_nano
from spendmeter.budgets.spool import Spool
from spendmeter.budgets.store import SpendStore, from_nano, open_store, storable_key, to_nano
from spendmeter.budgets.writer import SpendWriter
from spendmeter.call import UNKNOWN, Call
from spendmeter.errors import BudgetExceeded
from spendmeter.errors import plain_usd as _plain
from spendmeter.runtime import finisher

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
    reserved: Decimal = Decimal(0)  # held by calls in flight (their worst case), not yet settled
    blind: bool = False  # the store is unreachable: `spent` is the last value seen

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
            "reserved_usd": _plain(self.reserved),
            "blind": self.blind,
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
        store_timeout_s: float | None = None,
        previous: BudgetEngine | None = None,
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
        # The worst case of a call (reserved before it is sent), or None if unknown.
        self.estimate_cost = estimate_cost
        self.gauge_refresh_interval_s = gauge_refresh_interval_s
        self.store_timeout_s = config.store_timeout_ms / 1000 if store_timeout_s is None else store_timeout_s
        self.reservation_ttl_s = float(config.reservation_ttl_s)
        self._tz = config.tz
        self._limits_nano = {b.name: to_nano(b.limit_usd) for b in config.budgets}
        self._blocking = tuple(b for b in config.budgets if b.action == "block")
        self._gauges: Any = None
        self._last_refresh = float("-inf")
        self._refresh_lock = threading.Lock()
        self.writer: SpendWriter | None = None
        self.reservations: Reservations
        if previous is not None and previous.store is self.store:
            # A re-init on the same store: calls started under the previous engine finish into this one, so
            # its reservations, local view, writer thread and check pool carry on here (nothing is settled
            # twice, nothing waits for its reservation to expire).
            self.writer, self.reservations = previous.writer, previous.reservations
            self.reservations.timeout_s = self.store_timeout_s
            if self.writer is not None:
                self.writer.on_tick, self.writer.on_health = self._tick, self._health_changed
        else:
            if not getattr(self.store, "local", False):  # a SQL store: its I/O happens off the caller's path
                self.writer = SpendWriter(self.store, spool=Spool(config.spool) if config.spool else None,
                                          on_tick=self._tick, tick_s=max(0.05, min(gauge_refresh_interval_s, 1.0)),
                                          on_health=self._health_changed)  # fmt: skip
            self.reservations = Reservations(self.store, self.writer, timeout_s=self.store_timeout_s)

    @property
    def blind(self) -> bool:
        """True while the store is unreachable: decisions are made from the local view."""
        return self.writer is not None and not self.writer.up

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
        key = _label(call, budget.scope, call.who)
        return None if key is None else storable_key(str(key))

    def window(self, budget: Budget, now: datetime | None = None) -> PeriodWindow:
        return window(budget.period, now or self.clock(), self._tz)

    # -- before the call ----------------------------------------------------------------------------
    def check(self, call: Call) -> None:
        """Reserve the call's worst case on every blocking budget it counts against, or raise
        `BudgetExceeded` if one has no room left. Waits for the store at most `store_timeout_s`."""
        if not self._blocking:
            return
        now = self.clock()
        found: list[tuple[Claim, Budget, PeriodWindow]] = []
        for budget in self._blocking:
            key = self.scope_key(budget, call)
            if key is None:
                continue
            win = self.window(budget, now)
            found.append((((budget.name, key, win.key), self._limits_nano[budget.name], budget.estimate), budget, win))
        if not found:
            return
        found.sort(key=lambda f: f[0][0])  # one lock order for every reservation (PostgreSQL row locks)
        claims = [f[0] for f in found]
        estimate = self.estimate_cost(call) if self.estimate_cost is not None else None
        nano = clamp_nano(to_nano(estimate)) if estimate is not None and estimate > 0 else 0
        rid = uuid.uuid4().hex
        wall = time.time()
        decision = self.reservations.reserve(rid, claims, nano, wall + self.reservation_ttl_s, wall)
        blind = decision is None
        if decision is None:
            closed = [f[1].on_store_error == "closed" for f in found]
            decision = self.reservations.decide_blind(claims, nano, closed)
        refused, used = decision
        if refused is not None:
            (key3, limit, _strict), budget, win = found[refused]
            u = used[refused]
            tipped = budget.estimate and nano > 0 and u < limit
            raise BudgetExceeded(budget.name, budget.scope, key3[1], from_nano(u), budget.limit_usd, win.end,
                                 estimated=estimate if tipped else None)  # fmt: skip
        if nano > 0:
            self.reservations.hold(call, rid, tuple(c[0] for c in claims), nano, blind)

    # -- after the call -----------------------------------------------------------------------------
    def on_call(self, call: Call) -> None:
        """Sink interface: settle the call's reservation and add its cost to every budget it counts against."""
        rid = self.reservations.take(call)
        nano = 0 if call.status == "blocked" else clamp_nano(to_nano(call.cost_usd))  # blocked: nothing sent
        items: list[tuple[SpendKey, int]] = []
        if nano > 0:
            now = self.clock()
            for budget in self.config.budgets:
                key = self.scope_key(budget, call)
                if key is not None:
                    items.append(((budget.name, key, self.window(budget, now).key), nano))
        if rid is None and not items:
            return
        settlement: Settlement = (rid, items)
        if self.writer is None:
            self.store.settle([settlement])
            due = time.monotonic() - self._last_refresh >= self.gauge_refresh_interval_s
            if self._gauges is not None and due:
                self.refresh_gauges()
            return
        if not self.writer.up:
            self.reservations.spent_blind(items)
        self.writer.put(settlement)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the spend queued so far is in the store. True when it is (always, for memory)."""
        return True if self.writer is None else self.writer.flush(timeout)

    # -- reading ------------------------------------------------------------------------------------
    def spent(self, budget_name: str, key: str = GLOBAL_KEY) -> Decimal:
        """Spend of one budget key in the current period (after writing what is queued)."""
        budget = self._budget(budget_name)
        self.flush()
        return from_nano(self.store.get(budget.name, key, self.window(budget).key))

    def status(self, max_keys: int | None = None) -> list[BudgetStatus]:
        """Current period of every budget: one row for a global budget, the top spenders for per-key ones,
        with what calls in flight have reserved. While the store is unreachable: the local view, `blind`."""
        finisher.flush()  # the spend of calls that ended before this question, settled first
        max_keys = self.config.gauge_max_keys if max_keys is None else max_keys
        now = self.clock()
        wall = time.time()
        blind = self.blind
        if not blind:
            self.flush(1.0)
        out: list[BudgetStatus] = []
        for budget in self.config.budgets:
            win = self.window(budget, now)
            if blind:
                local = self.reservations.local_used(budget.name, win.key)
                rows = sorted(local.items(), key=lambda kv: -kv[1])[:max_keys]
                if not budget.per_key and not rows:
                    rows = [(GLOBAL_KEY, 0)]
                held: dict[str, int] = {}
            else:
                if budget.per_key:
                    rows = self.store.top(budget.name, win.key, 1, max_keys)
                else:
                    rows = [(GLOBAL_KEY, self.store.get(budget.name, GLOBAL_KEY, win.key))]
                held = self.store.reserved(budget.name, win.key, wall) if budget.action == "block" else {}
            limit = self._limits_nano[budget.name]
            for key, nano in rows:
                out.append(
                    BudgetStatus(
                        budget.name, budget.scope, key, budget.period, win.start, win.end, from_nano(nano),
                        budget.limit_usd, nano / limit, budget.action, budget.warn_at,
                        from_nano(held.get(key, 0)), blind,
                    )
                )  # fmt: skip
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

    def _health_changed(self, up: bool) -> None:
        if self._gauges is not None:
            self._gauges.set_blind(self.config.budgets, not up)

    def _tick(self) -> None:
        """The writer thread, every tick: the gauges (store reads happen there, never on a caller's thread)."""
        if self._gauges is not None and time.monotonic() - self._last_refresh >= self.gauge_refresh_interval_s:
            self.refresh_gauges()

    def refresh_gauges(self) -> None:
        """Set every gauge from the store (after spend and at scrape time). No-op until registered. While the
        store is unreachable only the blind gauge is set: the others keep their last values."""
        if self._gauges is None:
            return
        self._gauges.set_blind(self.config.budgets, self.blind)
        if self.blind:
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
        self.reservations.sweep(self.reservation_ttl_s)  # calls that never finished
        return removed

    def close(self, timeout: float = 5.0) -> None:
        """Write the queued spend (to the spool if the store is down), stop the threads, close the store."""
        deadline = time.monotonic() + timeout
        stopped = self.writer.close(timeout) if self.writer is not None else True
        stopped = self.reservations.close(deadline) and stopped
        if not stopped:
            # A thread is still inside a store call: closing its connection under it can crash the process
            # (sqlite3) or raise there. Leave the store to the garbage collector.
            log.warning("spendmeter budgets: the spend store %r did not answer within %.1fs; left open", self.store,
                        timeout)  # fmt: skip
            return
        self.store.close()

    def _budget(self, name: str) -> Budget:
        for budget in self.config.budgets:
            if budget.name == name:
                return budget
        raise KeyError(name)


def _ratio_nano(ratio: float) -> int:
    """A warn ratio as an exact integer fraction of 10**9 (0.8 -> 800_000_000), so thresholds are integers."""
    return int(Decimal(str(ratio)) * 10**9)
