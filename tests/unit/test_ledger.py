"""The SQLite ledger with hand-made calls: exact decimals, unpriced rows, flush on close, drops when full."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from spendmeter import _contain
from spendmeter.call import Attribution, Call, Cost, Unpriced, Usage
from spendmeter.errors import ConfigError
from spendmeter.sinks.ledger import COLUMN_NAMES, SCHEMA_VERSION, LedgerSink, open_backend

T0 = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)


def make_call(i: int = 0, *, cost: Cost | Unpriced | None = None, user: str = "alice", **kw) -> Call:
    call = Call(
        provider=kw.pop("provider", "openai"),
        operation=kw.pop("operation", "chat"),
        request_model=kw.pop("request_model", "gpt-4o-mini"),
        attribution=Attribution(user=user, feature="support", agent="router", conversation=f"c-{i}"),
        started_at=T0 + timedelta(seconds=i),
        **kw,
    )
    call.response_model = "gpt-4o-mini-2024-07-18"
    call.usage = Usage(input=1000 + i, cache_read=512, cache_write_5m=3, cache_write_1h=7, output=200 + i,
                       reasoning=64, source="reported")  # fmt: skip
    call.cost = cost
    call.ended_at = call.started_at + timedelta(milliseconds=250)
    call.duration_s = 0.25
    call.end_reason = "completed"
    return call


def make_cost(i: int) -> Cost:
    # Amounts a float cannot hold exactly; each class has a different number of decimal places.
    parts = [Decimal("0.000000015") * (i + 1), Decimal("0.0000375") * i, Decimal("1E-9"), Decimal("0.1") + Decimal(i)]
    return Cost(*parts, total=sum(parts, Decimal(0)), source="genai-prices 0.0.test", price_entry="gpt-4o-mini")


def rows(path, where: str = "1=1") -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(f"SELECT * FROM spendmeter_ledger WHERE {where} ORDER BY id").fetchall()
    finally:
        conn.close()


def test_costs_round_trip_exactly_and_sum_to_the_decimal_total(tmp_path):
    path = tmp_path / "ledger.db"
    sink = LedgerSink(f"sqlite:///{path}", service_name="checkout")
    costs = [make_cost(i) for i in range(50)]
    for i, cost in enumerate(costs):
        sink.on_call(make_call(i, cost=cost))
    sink.close()

    got = rows(path)
    assert len(got) == 50
    assert sum((Decimal(r["cost_total_usd"]) for r in got), Decimal(0)) == sum((c.total for c in costs), Decimal(0))
    for row, cost in zip(got, costs, strict=True):
        assert Decimal(row["cost_input_usd"]) == cost.input
        assert Decimal(row["cost_cache_read_usd"]) == cost.cache_read
        assert Decimal(row["cost_cache_write_usd"]) == cost.cache_write
        assert Decimal(row["cost_output_usd"]) == cost.output
        assert "E" not in row["cost_total_usd"], "stored in scientific notation"
    first = got[0]
    assert (first["user_id"], first["feature"], first["agent"], first["conversation"]) == (
        "alice", "support", "router", "c-0",
    )  # fmt: skip
    assert (first["service"], first["provider"], first["operation"], first["model"]) == (
        "checkout", "openai", "chat", "gpt-4o-mini-2024-07-18",
    )  # fmt: skip
    assert (first["input_tokens"], first["cache_read_tokens"], first["cache_write_5m_tokens"]) == (1000, 512, 3)
    assert (first["cache_write_1h_tokens"], first["output_tokens"], first["reasoning_tokens"]) == (7, 200, 64)
    assert (first["usage_source"], first["status"], first["end_reason"], first["stream"]) == (
        "reported", "ok", "completed", 0,
    )  # fmt: skip
    assert first["started_at"] == (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)  # µs, UTC
    assert first["ended_at"] - first["started_at"] == 250_000
    assert first["cost_source"] == "genai-prices 0.0.test" and first["unpriced_reason"] is None


def test_unpriced_and_unfinished_usage_rows_have_null_costs_not_zero(tmp_path):
    path = tmp_path / "ledger.db"
    sink = LedgerSink(str(path))  # a plain path means a SQLite file
    sink.on_call(make_call(0, cost=Unpriced("unknown model 'my-finetune'"), request_model="my-finetune"))
    errored = make_call(1, cost=None, status="error")
    errored.error_type, errored.end_reason, errored.usage = "APIConnectionError", "error", Usage()
    sink.on_call(errored)
    sink.close()

    unpriced, failed = rows(path)
    assert unpriced["unpriced_reason"] == "unknown model 'my-finetune'"
    assert unpriced["cost_total_usd"] is None and unpriced["cost_input_usd"] is None
    assert unpriced["input_tokens"] == 1000  # the tokens are still known
    assert (failed["status"], failed["error_type"], failed["usage_source"]) == (
        "error",
        "APIConnectionError",
        "missing",
    )
    assert failed["cost_total_usd"] is None and failed["output_tokens"] == 0


def test_close_writes_what_is_queued_even_before_the_interval(tmp_path):
    path = tmp_path / "ledger.db"
    sink = LedgerSink(path, flush_interval_s=3600, batch_size=10_000)
    for i in range(123):
        sink.on_call(make_call(i, cost=make_cost(i)))
    assert rows(path) == []  # nothing due yet: one batch after an hour
    sink.close()
    assert len(rows(path)) == 123 and sink.written == 123 and sink.dropped == 0
    sink.on_call(make_call(999))  # after close: dropped, not queued forever
    assert sink.dropped == 1


def test_flush_writes_everything_queued_before_it(tmp_path):
    path = tmp_path / "ledger.db"
    sink = LedgerSink(path, flush_interval_s=3600)
    try:
        for i in range(7):
            sink.on_call(make_call(i))
        assert sink.flush(timeout=5)
        assert len(rows(path)) == 7
    finally:
        sink.close()


def test_rows_are_written_after_the_interval_without_flush(tmp_path):
    path = tmp_path / "ledger.db"
    sink = LedgerSink(path, flush_interval_s=0.05)
    try:
        sink.on_call(make_call(0))
        deadline = time.monotonic() + 5
        while not rows(path) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(rows(path)) == 1
    finally:
        sink.close()


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path):
    path = tmp_path / "ledger.db"
    before = _contain.counts().get("ledger.dropped", 0)
    sink = LedgerSink(path, max_queue=5, batch_size=1000)
    # Hold the writer inside a write so the queue can only fill up.
    release, entered = threading.Event(), threading.Event()
    real_write = sink.backend.write

    def slow_write(batch):
        entered.set()
        release.wait(10)
        real_write(batch)

    sink.backend.write = slow_write
    sink.on_call(make_call(0))
    sink.flush(timeout=0.01)  # hands row 0 to the (now stuck) writer
    assert entered.wait(5)
    started = time.perf_counter()
    for i in range(1, 21):
        sink.on_call(make_call(i))
    elapsed = time.perf_counter() - started
    release.set()
    sink.close()
    assert sink.dropped == 20 - 5  # the writer holds row 0 (and took the flush marker); 5 fit in the queue
    assert _contain.counts().get("ledger.dropped", 0) - before == sink.dropped  # one report per dropped row
    assert len(rows(path)) == 21 - sink.dropped
    assert elapsed < 0.5, "on_call waited for the database"


def test_a_batch_that_fails_is_retried_once_then_counted(tmp_path):
    path = tmp_path / "ledger.db"
    before = _contain.counts().get("ledger.write_failed", 0)
    sink = LedgerSink(path)
    failures = iter([True, False, True, True])  # 1st batch: fails then works; 2nd batch: fails twice
    real_write = sink.backend.write

    def flaky(batch):
        if next(failures):
            raise sqlite3.OperationalError("disk I/O error")
        real_write(batch)

    sink.backend.write = flaky
    sink.on_call(make_call(0))
    assert sink.flush(5)
    sink.on_call(make_call(1))
    assert sink.flush(5)
    sink.close()
    lost = _contain.counts().get("ledger.write_failed", 0) - before  # counted per row lost
    assert (sink.written, sink.failed_rows, lost) == (1, 1, 1)
    assert [r["conversation"] for r in rows(path)] == ["c-0"]


def test_on_call_is_cheap(tmp_path):
    sink = LedgerSink(tmp_path / "ledger.db", max_queue=100_000, batch_size=5000)
    call = make_call(0, cost=make_cost(0))
    n = 5000
    try:
        started = time.perf_counter()
        for _ in range(n):
            sink.on_call(call)
        per_call = (time.perf_counter() - started) / n
    finally:
        sink.close()
    assert per_call < 100e-6, f"{per_call * 1e6:.1f} µs per on_call"  # typically ~2-5 µs; generous for CI


def test_schema_has_a_version_and_reopening_keeps_rows(tmp_path):
    path = tmp_path / "ledger.db"
    sink = LedgerSink(path)
    sink.on_call(make_call(0))
    sink.close()
    LedgerSink(path).close()
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("SELECT version FROM spendmeter_schema_version WHERE component='ledger'").fetchall()
        columns = [r[1] for r in conn.execute("PRAGMA table_info(spendmeter_ledger)")]
    finally:
        conn.close()
    assert version == [(SCHEMA_VERSION,)]
    assert columns == ["id", *COLUMN_NAMES]
    assert len(rows(path)) == 1


def test_a_newer_schema_is_refused_loudly(tmp_path):
    path = tmp_path / "ledger.db"
    LedgerSink(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE spendmeter_schema_version SET version = ? WHERE component='ledger'", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="newer than this spendmeter"):
        LedgerSink(path)


@pytest.mark.parametrize("target", ["mysql://db/ledger", "sqlite:///", "", "env:SPENDMETER_TEST_NOT_SET_ANYWHERE"])
def test_bad_targets_fail_with_a_config_error(target):
    with pytest.raises(ConfigError, match="ledger"):
        open_backend(target)


def test_rows_from_many_threads_all_land(tmp_path):
    path = tmp_path / "ledger.db"
    sink = LedgerSink(path, batch_size=64)

    def work(t: int) -> None:
        for i in range(200):
            sink.on_call(make_call(i, user=f"u{t}", cost=make_cost(i)))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close()
    got = rows(path)
    assert len(got) == 1600 and sink.dropped == 0
    expected = 8 * sum((make_cost(i).total for i in range(200)), Decimal(0))
    assert sum((Decimal(r["cost_total_usd"]) for r in got), Decimal(0)) == expected


def test_documented_sqlite_queries_run(tmp_path):
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "ledger.md").read_text()
    queries = re.findall(r"```sqlite\n(.*?)```", text, flags=re.S)
    assert len(queries) >= 2
    path = tmp_path / "ledger.db"
    sink = LedgerSink(path)
    now = datetime.now(UTC)
    for i in range(3):
        call = make_call(i, cost=make_cost(i), user="jo")
        call.started_at = now - timedelta(hours=i)
        sink.on_call(call)
    sink.on_call(make_call(3, cost=Unpriced("no price"), user="kim"))  # started 2025: outside 30 days
    sink.close()
    conn = sqlite3.connect(path)
    try:
        by_user_day, by_feature = (conn.execute(q).fetchall() for q in queries[:2])
    finally:
        conn.close()
    assert sum(r[3] for r in by_user_day if r[1] == "jo") == 3 and all(r[1] != "kim" for r in by_user_day)
    assert by_feature == [("support", pytest.approx(float(sum(make_cost(i).total for i in range(3)))), 4, 1)]


def test_a_forked_child_writes_its_own_rows_and_not_the_parents(tmp_path):
    import os

    path = tmp_path / "ledger.db"
    sink = LedgerSink(path, flush_interval_s=3600)
    sink.on_call(make_call(0, user="parent"))  # still queued at fork time
    pid = os.fork()
    if pid == 0:  # the child: no writer thread came along; the first row starts one on its own connection
        code = 1
        try:
            sink.on_call(make_call(1, user="child"))
            sink.close()
            code = 0 if sink.written == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    sink.close()
    assert sorted(r["user_id"] for r in rows(path)) == ["child", "parent"]


def test_postgres_without_psycopg_says_how_to_install_it(monkeypatch):
    import sys

    from spendmeter.budgets.store import open_store

    monkeypatch.setitem(sys.modules, "psycopg", None)  # what an environment without the extra looks like
    with pytest.raises(ConfigError, match=r"pip install 'spendmeter\[postgres\]'"):
        open_backend("postgresql://spendmeter@127.0.0.1:1/llm")
    with pytest.raises(ConfigError, match=r"pip install 'spendmeter\[postgres\]'"):
        open_store("postgresql://spendmeter@127.0.0.1:1/llm")
