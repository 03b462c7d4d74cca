"""Budgets when things go wrong or get busy (issue #12): concurrent callers against a blocking budget, a spend
store that hangs or is unreachable, spend kept on disk while it is, and SQLite files that cannot be used.

Every test prints a `RELIABILITY:` line with what it measured; RELIABILITY.md is written from them.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from tests.budget_race import COST, a_call, finish, hammer

import spendmeter
from spendmeter.budgets import BudgetEngine, BudgetExceeded, parse_budgets
from spendmeter.budgets.gauges import BudgetGauges
from spendmeter.budgets.store import SQLiteStore
from spendmeter.testing.scenarios import LOCAL_PROVIDERS

LIMIT = Decimal("0.10")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MSG = [{"role": "user", "content": "hi"}]
ONE_CALL = {"x-fake-usage": "input=0,output=1000"}


def config(store: str = "memory", **top: object) -> dict:
    return {
        "store": store,
        **top,
        "budgets": [
            {"name": "team-daily", "scope": "global", "period": "day", "limit_usd": str(LIMIT), "action": "block"},
        ],
    }






def engine_on(cfg: dict, **kw: object) -> BudgetEngine:
    return BudgetEngine(parse_budgets(cfg), clock=lambda: NOW, estimate_cost=lambda call: COST, **kw)




def process_main(runs: list[tuple[str, int]], barrier, out) -> None:  # a worker process of the SQLite test
    for store, threads in runs:
        engine = engine_on(config(store), store_timeout_s=30.0)
        start = threading.Event()
        result: list[int] = []
        runner = threading.Thread(target=lambda e=engine, n=threads, r=result, go=start: r.append(hammer(e, n, go)))
        runner.start()
        barrier.wait(120)  # both processes connected: go together
        start.set()
        runner.join(120)
        engine.close()
        out.put((store, result[0]))


# -- 5. reservations: N concurrent callers overshoot by at most one call ---------------------------------------
@pytest.mark.parametrize("threads", [8, 32])
def test_concurrent_callers_overshoot_at_most_one_call_memory(threads: int) -> None:
    engine = engine_on(config())
    admitted = hammer(engine, threads)
    spent = engine.spent("team-daily")
    print(f"\nRELIABILITY: memory, {threads} threads: {admitted} calls admitted, spent ${spent} of ${LIMIT}")
    assert spent <= LIMIT + COST and admitted == 10


def test_concurrent_callers_overshoot_at_most_one_call_sqlite_two_processes(tmp_path: Path) -> None:
    runs = [(f"sqlite:///{tmp_path / f'spend{n}.db'}", n // 2) for n in (8, 32)]  # 2 processes x n/2 threads
    for n in (8, 32):
        SQLiteStore(str(tmp_path / f"spend{n}.db")).close()  # the schema exists before the race
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=process_main, args=(runs, barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    admitted: dict[str, int] = {}
    for _ in range(2 * len(runs)):
        store, n = out.get(timeout=180)
        admitted[store] = admitted.get(store, 0) + n
    for p in procs:
        p.join(30)
    for store, per_process in runs:
        engine = engine_on(config(store))
        spent = engine.spent("team-daily")
        engine.close()
        print(f"\nRELIABILITY: sqlite, 2 processes x {per_process} threads: {admitted[store]} admitted, spent ${spent}")
        assert spent <= LIMIT + COST and admitted[store] == 10


@pytest.fixture
def sdk_budgets(pipeline, provider_server, tmp_path):
    def start(store: str, **top: object):
        import yaml

        path = tmp_path / "budgets.yaml"
        path.write_text(yaml.safe_dump(config(store, **top)))
        rt = spendmeter.init(budgets=path, registry=CollectorRegistry(), serve_metrics=False,
                             usage_hosts=("127.0.0.1",), providers=LOCAL_PROVIDERS)  # fmt: skip
        provider_server.clear()
        return rt

    yield start
    spendmeter.shutdown()


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_real_sdk_calls_from_32_threads_stop_at_the_limit(sdk_budgets, oai, provider_server, tmp_path, store):
    rt = sdk_budgets("memory" if store == "memory" else f"sqlite:///{tmp_path / 'spend.db'}",
                     store_timeout_ms=5000)  # fmt: skip
    blocked = [0]
    lock = threading.Lock()

    def caller() -> None:
        for _ in range(3):
            try:
                oai.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=1000, extra_headers=ONE_CALL)
            except spendmeter.BudgetExceeded:
                with lock:
                    blocked[0] += 1

    threads = [threading.Thread(target=caller) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    spent = rt.budgets.spent("team-daily")
    sent = len(provider_server.requests)
    print(f"\nRELIABILITY: SDK {store}, 32 threads x 3 calls: {sent} sent, {blocked[0]} blocked, spent ${spent}")
    assert sent == 10 and blocked[0] == 86 and spent == LIMIT


def test_reservation_shows_in_status_and_expires(tmp_path: Path) -> None:
    engine = engine_on(config(f"sqlite:///{tmp_path / 'spend.db'}"), store_timeout_s=10.0)  # not about deadlines
    call = a_call()
    engine.check(call)
    row = next(s for s in engine.status() if s.name == "team-daily")
    assert row.as_dict()["reserved_usd"] == "0.01" and row.reserved == COST
    # a crashed process never settles: the store ignores the reservation once it expired
    later = time.time() + engine.reservation_ttl_s + 1
    assert engine.store.reserved("team-daily", "2026-11-25", later) == {}
    assert engine.store.expire(later) == 1
    finish(engine, call)
    engine.flush()
    row = next(s for s in engine.status() if s.name == "team-daily")
    assert row.reserved == 0 and row.spent == COST
    engine.close()


# -- 1. no stall: a store that hangs adds at most the deadline ------------------------------------------------
# Another process holding SQLite's write lock: a plain interpreter (importing spendmeter in a child costs
# seconds on a busy CI machine; this needs only sqlite3).
HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("ready", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def locked(db: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("on_error", ["open", "closed"])
def test_sqlite_write_lock_held_by_another_process_adds_at_most_the_deadline(tmp_path: Path, on_error: str) -> None:
    db = tmp_path / "spend.db"
    cfg = config(f"sqlite:///{db}")
    cfg["budgets"][0]["on_store_error"] = on_error
    engine = engine_on(cfg, gauge_refresh_interval_s=0.1)
    registry = CollectorRegistry()
    engine.register_gauges(BudgetGauges(registry))
    blind = {"budget": "team-daily", "on_store_error": on_error}
    finish(engine, a_call(), Decimal("0.001"))
    engine.flush()
    holder = locked(db, 2.0)
    waits, outcomes = [], []
    for _ in range(20):
        call = a_call()
        started = time.perf_counter()
        try:
            engine.check(call)
            outcomes.append("admitted")
        except BudgetExceeded:
            outcomes.append("blocked")
            call = None
        waits.append(time.perf_counter() - started)
        if call is not None:
            finish(engine, call, Decimal("0.001"))
    assert registry.get_sample_value("llm_budget_blind", blind) == 1
    holder.wait(30)
    deadline = time.monotonic() + 10
    while engine.blind and time.monotonic() < deadline:
        time.sleep(0.05)
    engine.flush()
    print(f"\nRELIABILITY: sqlite write lock held 2 s, on_store_error={on_error}: first check "
          f"{waits[0] * 1000:.0f} ms, max of the others {max(waits[1:]) * 1000:.1f} ms; {outcomes.count('admitted')}"
          f" admitted; spent after ${engine.spent('team-daily')}")  # fmt: skip
    assert max(waits) < 0.05 + 0.15  # the 50 ms deadline, plus scheduling slack on a busy CI machine
    assert max(waits[1:]) < 0.02  # once it is known down, no caller waits at all
    assert not engine.blind and registry.get_sample_value("llm_budget_blind", blind) == 0
    expected = Decimal("0.001") * (1 + outcomes.count("admitted"))
    assert engine.spent("team-daily") == expected  # spend made while blind reached the store
    assert outcomes == (["admitted"] * 20 if on_error == "open" else ["blocked"] * 20)
    engine.close()


async def test_asyncio_loop_is_not_blocked_beyond_the_deadline(sdk_budgets, aoai, tmp_path):
    db = tmp_path / "spend.db"
    rt = sdk_budgets(f"sqlite:///{db}")
    await aoai.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=10, extra_headers=ONE_CALL)
    rt.budgets.flush()
    holder = await asyncio.to_thread(locked, db, 2.0)
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:  # how late a 5 ms timer fires tells how long the loop was blocked
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)  # the ticker runs before the first call finds the store locked
    for _ in range(10):
        await aoai.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=10, extra_headers=ONE_CALL)
    stop.set()
    await tick
    await asyncio.to_thread(holder.wait, 30)
    print(f"\nRELIABILITY: asyncio, sqlite write lock held: worst event-loop lag {max(lags) * 1000:.0f} ms")
    assert max(lags) < 0.05 + 0.15


# -- 2. spend made while the store is unreachable is kept ------------------------------------------------------
def test_spend_while_the_store_is_locked_is_spooled_and_lands_after_a_restart(tmp_path: Path) -> None:
    db, spool = tmp_path / "spend.db", tmp_path / "spool"
    spool.mkdir()
    cfg = config(f"sqlite:///{db}", spool=str(spool))
    engine = engine_on(cfg)
    finish(engine, a_call(), Decimal("0.001"))
    engine.flush()
    holder = locked(db, 8.0)
    engine.writer.mark_down("test: the lock is held")  # as the first check that missed its deadline would
    for _ in range(50):
        finish(engine, a_call(), Decimal("0.001"))
    engine.close(timeout=1.0)  # the process exits while the store is still locked
    files = os.listdir(spool)
    assert files, "the spend must be on disk"
    holder.kill()
    holder.wait(10)
    again = engine_on(cfg)  # the restarted process replays the spool
    deadline = time.monotonic() + 10
    while os.listdir(spool) and time.monotonic() < deadline:
        time.sleep(0.05)
    spent = again.spent("team-daily")
    print(f"\nRELIABILITY: store locked, process restarted: 50 settlements spooled in {files}; spent after ${spent}")
    assert spent == Decimal("0.051") and not os.listdir(spool)
    again.close()


def test_what_fits_nowhere_is_counted(tmp_path: Path) -> None:
    from spendmeter import _contain

    _contain.reset()
    engine = engine_on(config(f"sqlite:///{tmp_path / 'spend.db'}"))
    engine.writer.max_pending = 5
    holder = locked(tmp_path / "spend.db", 3.0)
    engine.writer.mark_down("test")
    for _ in range(12):
        finish(engine, a_call(), Decimal("0.001"))
    assert _contain.counts().get("budgets.spend_dropped") == 7
    holder.wait(30)
    engine.close()


def forked_child(engine: BudgetEngine) -> None:
    for _ in range(5):
        call = a_call()
        engine.check(call)
        finish(engine, call, Decimal("0.001"))
    engine.close()


def test_a_forked_worker_writes_its_own_spend(tmp_path: Path) -> None:
    """gunicorn --preload: init() in the master, calls in forked workers; each worker has its own writer."""
    engine = engine_on(config(f"sqlite:///{tmp_path / 'spend.db'}"), store_timeout_s=10.0)
    finish(engine, a_call(), Decimal("0.001"))
    engine.flush()
    child = mp.get_context("fork").Process(target=forked_child, args=(engine,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert engine.spent("team-daily") == Decimal("0.006")
    engine.close()
