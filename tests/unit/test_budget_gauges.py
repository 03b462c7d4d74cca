"""Budget gauges read back from a private registry; per-key export stays bounded and drops stale keys."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from spendmeter.budgets import BudgetEngine, parse_budgets
from spendmeter.budgets.gauges import BudgetGauges
from spendmeter.call import Attribution, Call, Cost

NOON = datetime(2024, 5, 15, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_call(cost: str, user: str | None = "alice") -> Call:
    total = Decimal(cost)
    call = Call(provider="openai", operation="chat", request_model="gpt-4o", attribution=Attribution(user=user))
    call.cost = Cost(Decimal(0), Decimal(0), Decimal(0), total, total, "test", "test-entry")
    return call


def setup(max_keys: int = 1000, warn_at: list[float] | None = None) -> tuple[BudgetEngine, CollectorRegistry, Clock]:
    config = parse_budgets(
        {
            "gauge_max_keys": max_keys,
            "budgets": [
                {
                    "name": "global-monthly",
                    "scope": "global",
                    "period": "month",
                    "limit_usd": 100,
                    "warn_at": [0.5, 0.8],
                },
                {
                    "name": "user-daily",
                    "scope": "user",
                    "period": "day",
                    "limit_usd": 2,
                    "action": "block",
                    "warn_at": warn_at if warn_at is not None else [0.5, 0.9],
                },
            ],
        }
    )
    clock = Clock(NOON)
    engine = BudgetEngine(config, clock=clock, gauge_refresh_interval_s=0)
    registry = CollectorRegistry()
    engine.register_gauges(BudgetGauges(registry))
    return engine, registry, clock


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def user_keys(registry: CollectorRegistry, metric: str = "llm_budget_spent_usd") -> set[str]:
    return {
        s.labels["key"]
        for m in registry.collect()
        for s in m.samples
        if s.name == metric and s.labels["budget"] == "user-daily"
    }


def test_global_budget_gauges() -> None:
    engine, reg, _ = setup()
    labels = {"budget": "global-monthly", "scope": "global", "key": "all", "period": "month"}
    assert value(reg, "llm_budget_spent_usd", **labels) == 0  # exported from the start
    engine.on_call(make_call("42.5"))
    assert value(reg, "llm_budget_limit_usd", **labels) == 100
    assert value(reg, "llm_budget_spent_usd", **labels) == 42.5
    assert value(reg, "llm_budget_utilization_ratio", **labels) == pytest.approx(0.425)
    assert value(reg, "llm_budget_warn_ratio", budget="global-monthly", level="0.5") == 0.5
    assert value(reg, "llm_budget_warn_ratio", budget="global-monthly", level="0.8") == 0.8
    assert value(reg, "llm_budget_period_end_timestamp_seconds", budget="global-monthly", period="month") == (
        datetime(2024, 6, 1, tzinfo=UTC).timestamp()
    )
    assert value(reg, "llm_budget_users_over_limit", budget="global-monthly") == 0


def test_per_user_gauges_only_above_lowest_warn_level() -> None:
    engine, reg, _ = setup()
    engine.on_call(make_call("0.99", user="low"))  # 49.5%: below the 50% warn level
    engine.on_call(make_call("1.00", user="half"))  # exactly 50%: exported
    engine.on_call(make_call("2.50", user="over"))
    assert user_keys(reg) == {"half", "over"}
    labels = {"budget": "user-daily", "scope": "user", "key": "over", "period": "day"}
    assert value(reg, "llm_budget_utilization_ratio", **labels) == 1.25
    assert value(reg, "llm_budget_limit_usd", **labels) == 2
    assert value(reg, "llm_budget_users_over_limit", budget="user-daily") == 1
    engine.on_call(make_call("0.01", user="low"))  # crosses 50%
    assert user_keys(reg) == {"half", "over", "low"}


def test_per_user_export_is_capped_by_highest_utilization() -> None:
    engine, reg, _ = setup(max_keys=5)
    for i in range(50):
        engine.on_call(make_call(str(Decimal("1.00") + Decimal(i) / 100), user=f"u{i:02d}"))
    assert user_keys(reg) == {f"u{i}" for i in range(45, 50)}
    for metric in ("llm_budget_limit_usd", "llm_budget_utilization_ratio"):
        assert user_keys(reg, metric) == {f"u{i}" for i in range(45, 50)}
    assert value(reg, "llm_budget_users_over_limit", budget="user-daily") == 0  # all under $2
    engine.on_call(make_call("1.00", user="u00"))  # 2.00: now the top
    assert "u00" in user_keys(reg) and "u45" not in user_keys(reg)
    assert value(reg, "llm_budget_users_over_limit", budget="user-daily") == 1


def test_series_are_removed_when_a_new_period_starts() -> None:
    engine, reg, clock = setup()
    engine.on_call(make_call("1.80", user="alice"))
    assert user_keys(reg) == {"alice"}
    first_end = value(reg, "llm_budget_period_end_timestamp_seconds", budget="user-daily", period="day")
    clock.now = NOON + timedelta(days=1)
    engine.refresh_gauges()  # what a scrape does
    assert user_keys(reg) == set()
    assert user_keys(reg, "llm_budget_limit_usd") == set()
    assert value(reg, "llm_budget_period_end_timestamp_seconds", budget="user-daily", period="day") == (
        first_end + 86400
    )
    global_labels = {"budget": "global-monthly", "scope": "global", "key": "all", "period": "month"}
    assert value(reg, "llm_budget_spent_usd", **global_labels) == pytest.approx(1.8)


def test_no_warn_levels_exports_only_keys_at_the_limit() -> None:
    engine, reg, _ = setup(warn_at=[])
    engine.on_call(make_call("1.99", user="a"))
    engine.on_call(make_call("2.00", user="b"))
    assert user_keys(reg) == {"b"}


def test_refresh_is_throttled_after_calls_but_not_at_scrape() -> None:
    engine, reg, _ = setup()
    engine.gauge_refresh_interval_s = 3600
    engine.refresh_gauges()
    engine.on_call(make_call("1.50", user="alice"))
    assert user_keys(reg) == set()  # throttled: the next scrape refreshes
    engine.refresh_gauges()
    assert user_keys(reg) == {"alice"}


def test_a_hundred_thousand_users_stay_bounded() -> None:
    engine, reg, _ = setup(max_keys=1000)
    engine.gauge_refresh_interval_s = 3600
    period = engine.window(engine.config.budgets[1]).key
    # straight into the store in one batch: on_call per user is covered above and would only slow this down
    engine.store.add(
        [(("user-daily", f"user-{i}", period), 1_900_000_000 if i % 10 == 0 else 100_000_000) for i in range(100_000)]
    )
    started = time.perf_counter()
    engine.refresh_gauges()
    assert time.perf_counter() - started < 1.0  # a scrape-time refresh stays cheap
    keys = user_keys(reg)
    assert len(keys) == 1000  # 10,000 users are at 95%, only the top 1000 are exported
    assert all(int(k.split("-")[1]) % 10 == 0 for k in keys)


def test_a_second_engine_on_the_same_registry_takes_over_the_gauges() -> None:
    engine, reg, _ = setup()
    engine.on_call(make_call("1.50", user="alice"))
    assert user_keys(reg) == {"alice"}
    other = BudgetEngine(
        parse_budgets({"budgets": [{"name": "only", "scope": "global", "period": "day", "limit_usd": 1}]}),
        clock=Clock(NOON),
    )
    other.register_gauges(engine.gauges)  # what a second init() does; must not raise "Duplicated timeseries"
    assert user_keys(reg) == set()
    assert value(reg, "llm_budget_warn_ratio", budget="global-monthly", level="0.5") is None
    assert value(reg, "llm_budget_limit_usd", budget="only", scope="global", key="all", period="day") == 1
