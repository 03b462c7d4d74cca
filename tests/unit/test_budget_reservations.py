"""Reservations in each local store (memory, SQLite): the admission rule, settle, expiry; the new budgets-file
keys (`on_store_error`, `store_timeout_ms`, `reservation_ttl_s`, `spool`) and their errors; the spool file."""

from __future__ import annotations

import pytest

from spendmeter.budgets import MemoryStore, SQLiteStore, parse_budgets
from spendmeter.budgets.spend import admits, clamp_nano
from spendmeter.budgets.spool import Spool
from spendmeter.errors import ConfigError

KEY = ("b", "all", "2026-11-25")


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    s = MemoryStore() if request.param == "memory" else SQLiteStore(str(tmp_path / "spend.db"))
    yield s
    s.close()


def test_admission_rule() -> None:
    assert admits(90, 100, 10, strict=True) and not admits(91, 100, 10, strict=True)
    assert admits(99, 100, 50, strict=False) and not admits(100, 100, 0, strict=False)
    assert clamp_nano(10**30) < 2**63 // 1000 and clamp_nano(-5) == 0


def test_reserve_settle_and_expire(store) -> None:
    claims = [(KEY, 100, False)]
    assert store.reserve("r1", claims, 60, expires_at=1000.0, now=0.0) == (None, [0])
    assert store.reserve("r2", claims, 60, expires_at=1000.0, now=0.0) == (None, [60])  # 60 < 100: admitted
    assert store.reserve("r3", claims, 60, expires_at=1000.0, now=0.0) == (0, [120])  # refused, nothing held
    assert store.reserved("b", "2026-11-25", 0.0) == {"all": 120}
    store.settle([("r1", [(KEY, 10)])])  # actual 10 replaces the 60 reserved
    assert store.get("b", "all", "2026-11-25") == 10
    assert store.reserved("b", "2026-11-25", 0.0) == {"all": 60}
    assert store.reserved("b", "2026-11-25", 2000.0) == {}  # r2 expired: ignored
    assert store.reserve("r4", claims, 60, expires_at=3000.0, now=2000.0) == (None, [10])
    assert store.expire(2000.0) == 1  # r2's row is deleted
    assert store.reserved("b", "2026-11-25", 2000.0) == {"all": 60}


def test_strict_budgets_need_room_for_the_whole_reservation(store) -> None:
    assert store.reserve("r1", [(KEY, 100, True)], 60, 1000.0, 0.0)[0] is None
    assert store.reserve("r2", [(KEY, 100, True)], 60, 1000.0, 0.0)[0] == 0  # 60 + 60 > 100
    assert store.reserve("r3", [(KEY, 100, True)], 40, 1000.0, 0.0)[0] is None  # exactly 100


def test_a_refusal_on_one_budget_reserves_on_none(store) -> None:
    other = ("c", "all", "2026-11-25")
    store.add([(other, 100)])
    assert store.reserve("r1", [(KEY, 100, False), (other, 100, False)], 5, 1000.0, 0.0) == (1, [0, 100])
    assert store.reserved("b", "2026-11-25", 0.0) == {}


def test_new_budget_file_keys(tmp_path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    cfg = parse_budgets({"store_timeout_ms": 20, "reservation_ttl_s": 60, "spool": str(spool), "budgets": [
        {"name": "b", "scope": "global", "period": "day", "limit_usd": 1, "action": "block",
         "on_store_error": "closed"}]})  # fmt: skip
    assert (cfg.store_timeout_ms, cfg.reservation_ttl_s, cfg.spool) == (20, 60, str(spool))
    assert cfg.budgets[0].on_store_error == "closed"
    assert parse_budgets({"budgets": [{"name": "b", "scope": "global", "period": "day", "limit_usd": 1,
                                       "action": "block"}]}).budgets[0].on_store_error == "open"  # fmt: skip


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"store_timeout_ms": 0}, "store_timeout_ms"),
        ({"store_timeout_ms": "50"}, "store_timeout_ms"),
        ({"reservation_ttl_s": 1}, "reservation_ttl_s"),
        ({"spool": "/no/such/dir"}, "spool"),
        ({"budgets": [{"name": "b", "scope": "global", "period": "day", "limit_usd": 1,
                       "on_store_error": "closed"}]}, "budgets[0].on_store_error"),  # an alert never blocks
        ({"budgets": [{"name": "b", "scope": "global", "period": "day", "limit_usd": 1, "action": "block",
                       "on_store_error": "shut"}]}, "budgets[0].on_store_error"),
    ],
)
def test_bad_values_name_the_key(data, key) -> None:
    with pytest.raises(ConfigError) as info:
        parse_budgets(data, file="budgets.yaml")
    assert f"'{key}'" in str(info.value)


def test_spool_round_trip_and_bound(tmp_path) -> None:
    spool = Spool(str(tmp_path), max_bytes=200)
    kept = spool.append([("r1", [(KEY, 5)]), (None, [(KEY, 7)]), (None, [(KEY, 9)] * 20)])
    assert kept == 2  # the third does not fit in 200 bytes: the caller counts it
    claimed = [(path, s) for path, s in spool.claim()]
    assert [s for _p, s in claimed] == [[("r1", [(KEY, 5)]), (None, [(KEY, 7)])]]
    spool.done(claimed[0][0])
    assert list(spool.claim()) == []
