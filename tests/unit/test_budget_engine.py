"""check() before the call, on_call() after it: which budgets a call counts against, blocking, rollover."""

from __future__ import annotations

import pickle
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from spendmeter.budgets import BudgetEngine, BudgetExceeded, SQLiteStore, parse_budgets
from spendmeter.call import Attribution, Call, Cost, Unpriced


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_call(
    cost: str | None = "0.50",
    *,
    user: str | None = "alice",
    feature: str | None = "support",
    agent: str | None = None,
    model: str = "gpt-4o",
    provider: str = "openai",
    status: str = "ok",
    max_tokens: int | None = None,
) -> Call:
    call = Call(
        provider=provider,
        operation="chat",
        request_model=model,
        attribution=Attribution(user=user, feature=feature, agent=agent),
        request_max_tokens=max_tokens,
    )
    call.status = status  # type: ignore[assignment]
    if cost is not None:
        total = Decimal(cost)
        call.cost = Cost(Decimal(0), Decimal(0), Decimal(0), total, total, "test", "test-entry")
    else:
        call.cost = Unpriced("unknown model")
    return call


CONFIG = {
    "timezone": "UTC",
    "budgets": [
        {
            "name": "global-monthly",
            "scope": "global",
            "period": "month",
            "limit_usd": 10,
            "warn_at": [0.5, 0.8],
        },
        {"name": "user-daily", "scope": "user", "period": "day", "limit_usd": 2, "action": "block"},
        {
            "name": "support-monthly",
            "scope": "feature",
            "match": {"feature": "support"},
            "period": "month",
            "limit_usd": 3,
        },
        {"name": "model-weekly", "scope": "model", "period": "week", "limit_usd": 100},
    ],
}
NOON = datetime(2024, 5, 15, 12, 0, tzinfo=UTC)  # a Wednesday


def engine_for(config: dict = CONFIG, now: datetime = NOON, **kw) -> tuple[BudgetEngine, Clock]:
    clock = Clock(now)
    return BudgetEngine(parse_budgets(config), clock=clock, **kw), clock


def test_on_call_adds_to_every_applicable_budget() -> None:
    engine, _ = engine_for()
    engine.on_call(make_call("0.25", user="alice", feature="support"))
    engine.on_call(make_call("0.10", user="bob", feature="search", model="claude-sonnet-4-5"))
    assert engine.spent("global-monthly") == Decimal("0.35")
    assert engine.spent("user-daily", "alice") == Decimal("0.25")
    assert engine.spent("user-daily", "bob") == Decimal("0.10")
    assert engine.spent("support-monthly", "support") == Decimal("0.25")
    assert engine.spent("support-monthly", "search") == 0  # match excludes it
    assert engine.spent("model-weekly", "gpt-4o") == Decimal("0.25")
    assert engine.spent("model-weekly", "claude-sonnet-4-5") == Decimal("0.10")


def test_sums_stay_exact_for_sub_micro_costs() -> None:
    engine, _ = engine_for()
    for _ in range(1000):
        engine.on_call(make_call("0.0000015"))  # one token at $1.50 per million
    assert engine.spent("global-monthly") == Decimal("0.0015")


def test_unattributed_calls_count_for_global_only() -> None:
    engine, _ = engine_for()
    engine.on_call(make_call("1.00", user=None, feature=None))
    assert engine.spent("global-monthly") == Decimal("1")
    assert engine.spent("user-daily", "unknown") == 0
    assert [s.key for s in engine.status() if s.name == "user-daily"] == []


def test_blocked_unpriced_and_error_calls() -> None:
    engine, _ = engine_for()
    engine.on_call(make_call("5.00", status="blocked"))
    engine.on_call(make_call(None))  # unpriced: nothing is invented
    assert engine.spent("global-monthly") == 0
    engine.on_call(make_call("0.30", status="error"))  # an error call pays what it cost
    assert engine.spent("global-monthly") == Decimal("0.30")


def test_block_raises_with_fields_once_spent_reaches_limit() -> None:
    engine, _ = engine_for()
    engine.check(make_call())  # nothing spent yet
    engine.on_call(make_call("1.99"))
    engine.check(make_call())  # 1.99 < 2: still allowed
    engine.on_call(make_call("0.01"))
    with pytest.raises(BudgetExceeded) as info:
        engine.check(make_call())
    exc = info.value
    assert (exc.budget, exc.scope, exc.key) == ("user-daily", "user", "alice")
    assert exc.spent == Decimal("2.00") and exc.limit == Decimal("2")
    assert exc.period_end == datetime(2024, 5, 16, tzinfo=UTC)
    assert "user-daily" in str(exc) and "'alice'" in str(exc) and "2024-05-16T00:00:00+00:00" in str(exc)
    # other users are unaffected, and so are unattributed calls
    engine.check(make_call(user="bob"))
    engine.check(make_call(user=None))
    # and it survives pickling (multiprocessing, task queues)
    again = pickle.loads(pickle.dumps(exc))
    assert (again.budget, again.key, again.spent, again.period_end) == (
        exc.budget,
        exc.key,
        exc.spent,
        exc.period_end,
    )


def test_alert_only_budgets_never_raise() -> None:
    engine, _ = engine_for()
    for _ in range(30):
        engine.on_call(make_call("1.00", user=None))  # global at 300%, support at 1000%
        engine.check(make_call(user=None))
    status = {(s.name, s.key): s for s in engine.status()}
    assert status[("global-monthly", "all")].utilization == pytest.approx(3.0)
    assert status[("support-monthly", "support")].utilization == pytest.approx(10.0)


def test_block_only_applies_where_match_matches() -> None:
    config = {
        "budgets": [
            {
                "name": "search-cap",
                "scope": "global",
                "match": {"feature": "search", "provider": "anthropic"},
                "period": "day",
                "limit_usd": 1,
                "action": "block",
            },
        ]
    }
    engine, _ = engine_for(config)
    engine.on_call(make_call("1.00", feature="search", provider="anthropic"))
    engine.check(make_call(feature="search", provider="openai"))
    engine.check(make_call(feature="support", provider="anthropic"))
    with pytest.raises(BudgetExceeded) as info:
        engine.check(make_call(feature="search", provider="anthropic"))
    assert info.value.key == "all" and info.value.scope == "global"


def test_daily_rollover_at_local_midnight() -> None:
    engine, clock = engine_for(now=datetime(2024, 5, 15, 23, 59, 59, tzinfo=UTC))
    engine.on_call(make_call("2.00"))
    with pytest.raises(BudgetExceeded):
        engine.check(make_call())
    clock.now = datetime(2024, 5, 16, 0, 0, 0, tzinfo=UTC)
    engine.check(make_call())  # a new day starts at 0
    assert engine.spent("user-daily", "alice") == 0
    assert engine.spent("global-monthly") == Decimal("2")  # the month goes on


def test_month_and_week_rollover() -> None:
    engine, clock = engine_for(now=datetime(2024, 5, 31, 23, 59, 59, tzinfo=UTC))  # a Friday
    engine.on_call(make_call("4.00"))
    clock.now = datetime(2024, 6, 1, tzinfo=UTC)
    assert engine.spent("global-monthly") == 0
    assert engine.spent("model-weekly", "gpt-4o") == Decimal("4")  # same week (Mon 27 May - Sun 2 Jun)
    clock.now = datetime(2024, 6, 2, 23, 59, 59, tzinfo=UTC)
    assert engine.spent("model-weekly", "gpt-4o") == Decimal("4")
    clock.now = datetime(2024, 6, 3, tzinfo=UTC)  # Monday
    assert engine.spent("model-weekly", "gpt-4o") == 0


def test_rollover_in_a_dst_timezone() -> None:
    config = dict(CONFIG, timezone="America/New_York")
    ny = ZoneInfo("America/New_York")
    # 10 March 2024 is 23 hours long in New York; 23:59:59 local is 03:59:59 UTC the next day
    engine, clock = engine_for(config, now=datetime(2024, 3, 10, 23, 59, 59, tzinfo=ny))
    engine.on_call(make_call("2.00"))
    with pytest.raises(BudgetExceeded) as info:
        engine.check(make_call())
    assert info.value.period_end == datetime(2024, 3, 11, 4, tzinfo=UTC)
    clock.now = datetime(2024, 3, 11, 4, 0, 0, tzinfo=UTC)  # local midnight, EDT
    engine.check(make_call())


def test_estimate_blocks_a_call_that_could_cross_the_limit() -> None:
    config = {
        "budgets": [
            {
                "name": "u",
                "scope": "user",
                "period": "day",
                "limit_usd": 1,
                "action": "block",
                "estimate": True,
            },
        ]
    }
    priced: list[Call] = []

    def estimate(call: Call) -> Decimal | None:
        priced.append(call)
        return None if call.request_max_tokens is None else Decimal("0.00001") * call.request_max_tokens

    engine, _ = engine_for(config, estimate_cost=estimate)
    engine.on_call(make_call("0.90"))
    admitted = make_call(None, max_tokens=10_000)
    engine.check(admitted)  # 0.90 + 0.10 = 1.00, not past the limit
    engine.on_call(admitted)  # finished (unpriced here): its reservation of 0.10 is released
    engine.check(make_call(max_tokens=None))  # no estimate: only the spent >= limit rule applies
    with pytest.raises(BudgetExceeded) as info:
        engine.check(make_call(max_tokens=10_001))
    assert info.value.estimated == Decimal("0.10001")
    assert "may cost up to" in str(info.value)
    assert len(priced) == 3


def test_estimate_is_not_priced_when_no_budget_applies() -> None:
    # A blocking budget reserves the worst case (issue #12), so it is priced; but only when one applies.
    engine, _ = engine_for(estimate_cost=lambda call: pytest.fail("should not be priced"))
    engine.check(make_call(max_tokens=100, user=None))


def test_status_rows() -> None:
    engine, _ = engine_for()
    engine.on_call(make_call("1.50", user="alice"))
    engine.on_call(make_call("0.50", user="bob"))
    rows = [s for s in engine.status() if s.name == "user-daily"]
    assert [(s.key, s.spent, s.utilization) for s in rows] == [
        ("alice", Decimal("1.5"), 0.75),
        ("bob", Decimal("0.5"), 0.25),
    ]
    d = rows[0].as_dict()
    assert (d["spent_usd"], d["limit_usd"]) == ("1.5", "2")
    assert d["period_end"] == "2024-05-16T00:00:00+00:00" and d["action"] == "block"
    glob = next(s for s in engine.status() if s.name == "global-monthly")
    assert glob.key == "all" and glob.spent == Decimal("2") and glob.period_end == datetime(2024, 6, 1, tzinfo=UTC)


def test_threads_adding_at_once_lose_nothing() -> None:
    engine, _ = engine_for()

    def work() -> None:
        for _ in range(500):
            engine.on_call(make_call("0.001", user="alice"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert engine.spent("global-monthly") == Decimal("4")


def test_sqlite_store_survives_a_new_engine(tmp_path) -> None:
    db = str(tmp_path / "spend.db")
    engine, _ = engine_for(store=SQLiteStore(db))
    engine.on_call(make_call("2.00"))
    engine.close()
    again, _ = engine_for(store=SQLiteStore(db))
    with pytest.raises(BudgetExceeded):
        again.check(make_call())
    assert again.spent("global-monthly") == Decimal("2")


def test_prune_forgets_old_periods_but_keeps_the_previous_one() -> None:
    engine, clock = engine_for()
    engine.on_call(make_call("1.00"))
    clock.now = NOON + timedelta(days=1)
    engine.on_call(make_call("1.00"))
    clock.now = NOON + timedelta(days=2)
    removed = engine.prune(keep_previous=1)
    assert removed == 1  # only user-daily of day 1 is older than yesterday
    clock.now = NOON + timedelta(days=1)
    assert engine.spent("user-daily", "alice") == Decimal("1")
