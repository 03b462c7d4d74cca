"""The storage package without a server: the batch writer on its own, the schema rendered for both dialects,
and the SQLite database helper (per-thread connections, versions)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from spendmeter import _contain
from spendmeter.errors import ConfigError
from spendmeter.storage import BatchWriter, Column, Component, SQLiteDatabase, Table, parse_target, render
from spendmeter.storage.schema import VERSION_TABLE, IntegerTimestamps, from_micros, micros


class Recorder:
    """A `write(rows)` that keeps every batch, and can be told to fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.fail = 0  # how many more calls raise
        self.lock = threading.Lock()

    def __call__(self, rows: list[int]) -> None:
        with self.lock:
            if self.fail:
                self.fail -= 1
                raise OSError("disk full")
            self.batches.append(list(rows))


def counted(kind: str) -> int:
    return _contain.counts().get(kind, 0)


def test_batches_by_size() -> None:
    write = Recorder()
    writer = BatchWriter(write, kind="test.size", batch_size=10, flush_interval_s=3600)
    for i in range(35):
        writer.put(i)
    deadline = time.monotonic() + 5
    while len(write.batches) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert write.batches == [list(range(0, 10)), list(range(10, 20)), list(range(20, 30))]  # 5 still wait
    assert writer.close(5)
    assert write.batches[-1] == list(range(30, 35)) and writer.written == 35


def test_a_writer_that_fell_behind_takes_up_to_max_batch_size() -> None:
    release = threading.Event()
    batches: list[list[int]] = []

    def held(rows: list[int]) -> None:
        batches.append(list(rows))
        release.wait(5)

    writer = BatchWriter(held, kind="test.behind", batch_size=10, max_batch_size=25, flush_interval_s=3600)
    for i in range(10):
        writer.put(i)  # a full batch: written now, and held
    deadline = time.monotonic() + 5
    while not batches and time.monotonic() < deadline:
        time.sleep(0.005)
    for i in range(10, 50):
        writer.put(i)  # 40 rows wait meanwhile
    release.set()
    assert writer.close(5)
    assert [len(b) for b in batches] == [10, 25, 15] and [r for b in batches for r in b] == list(range(50))
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchWriter(held, kind="test.behind", batch_size=10, max_batch_size=5)


def test_batches_by_interval_after_the_oldest_row() -> None:
    write = Recorder()
    writer = BatchWriter(write, kind="test.interval", batch_size=1000, flush_interval_s=0.1)
    started = time.monotonic()
    writer.put(1)
    writer.put(2)
    deadline = started + 5
    while not write.batches and time.monotonic() < deadline:
        time.sleep(0.005)
    assert write.batches == [[1, 2]]
    assert time.monotonic() - started >= 0.09  # not before the interval
    writer.close()


def test_flush_writes_everything_queued_before_it() -> None:
    write = Recorder()
    writer = BatchWriter(write, kind="test.flush", batch_size=1000, flush_interval_s=3600)
    for i in range(7):
        writer.put(i)
    assert write.batches == []
    assert writer.flush(5)
    assert write.batches == [list(range(7))] and writer.written == 7
    assert writer.flush(5)  # nothing queued: still True
    writer.close()


def test_close_writes_what_is_queued_then_rows_are_dropped_and_counted() -> None:
    write = Recorder()
    writer = BatchWriter(write, kind="test.close", batch_size=1000, flush_interval_s=3600)
    for i in range(5):
        writer.put(i)
    before = counted("test.close.dropped")
    assert writer.close(5) and writer.closed
    assert write.batches == [list(range(5))]
    assert writer.put(99) is False and writer.put(100) is False
    assert (writer.dropped, counted("test.close.dropped") - before) == (2, 2)
    assert writer.close() is True  # twice is fine
    assert not any(t.name == "spendmeter-test.close" for t in threading.enumerate())


def test_a_full_queue_drops_without_blocking_and_counts_each_row() -> None:
    release, entered = threading.Event(), threading.Event()

    def stuck(rows: list[int]) -> None:
        entered.set()
        release.wait(10)

    writer = BatchWriter(stuck, kind="test.full", max_queue=3, batch_size=1)
    before = counted("test.full.dropped")
    writer.put(0)
    assert entered.wait(5)  # the writer holds row 0
    started = time.perf_counter()
    results = [writer.put(i) for i in range(1, 11)]
    assert time.perf_counter() - started < 0.5
    assert results == [True] * 3 + [False] * 7
    assert (writer.dropped, counted("test.full.dropped") - before) == (7, 7)
    assert "test.full.dropped" in _contain.failing()
    release.set()
    assert writer.flush(5)
    writer.put(11)  # accepted again: the outage is over
    assert "test.full.dropped" not in _contain.failing()
    writer.close()


def test_a_failed_batch_is_retried_once_after_reset_then_its_rows_are_counted() -> None:
    write, resets = Recorder(), []
    writer = BatchWriter(write, kind="test.fail", reset=lambda: resets.append(1), batch_size=1000)
    before = counted("test.fail.write_failed")
    write.fail = 1  # the first try fails, the retry works
    writer.put(1)
    assert writer.flush(5)
    write.fail = 2  # both tries fail: 3 rows lost
    for i in range(3):
        writer.put(i)
    assert writer.flush(5)
    assert (writer.written, writer.failed_rows, len(resets)) == (1, 3, 2)
    assert counted("test.fail.write_failed") - before == 3  # rows, not batches
    assert "test.fail.write_failed" in _contain.failing()
    writer.put(7)
    assert writer.flush(5) and writer.written == 2
    assert "test.fail.write_failed" not in _contain.failing()  # recovered
    writer.close()


def test_a_forked_child_starts_empty_and_writes_its_own_rows(tmp_path: Path) -> None:
    out = tmp_path / "child.txt"

    def write(rows: list[str]) -> None:
        with out.open("a") as f:
            f.writelines(f"{os.getpid()} {r}\n" for r in rows)

    writer = BatchWriter(write, kind="test.fork", flush_interval_s=3600)
    writer.put("parent")  # still queued at fork time
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            writer.put("child")
            code = 0 if writer.close(5) and writer.written == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    writer.close(5)
    lines = out.read_text().splitlines()
    assert sorted(line.split()[1] for line in lines) == ["child", "parent"]
    assert f"{pid} child" in lines and f"{os.getpid()} parent" in lines


# ----------------------------------------------------------------------------------------- schema

THINGS = Table(
    "things",
    (
        Column("at", "timestamp", not_null=True),
        Column("name", "text"),
        Column("n", "bigint", not_null=True),
        Column("ok", "bool", not_null=True),
        Column("usd", "decimal"),
        Column("secs", "float"),
    ),
    indexes=(("things_by_name", ("name", "at")),),
)
THINGS_V1 = Component("things", 1, (THINGS,), lock_id=1, config_key="things_db")


def test_one_definition_renders_both_dialects() -> None:
    sqlite_sql, pg_sql = THINGS.create("sqlite"), THINGS.create("postgresql")
    assert sqlite_sql[0] == (
        "CREATE TABLE IF NOT EXISTS things (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, name TEXT, "
        "n INTEGER NOT NULL, ok INTEGER NOT NULL, usd TEXT, secs REAL)"
    )
    assert pg_sql[0] == (
        "CREATE TABLE IF NOT EXISTS things (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL, name TEXT, "
        "n BIGINT NOT NULL, ok BOOLEAN NOT NULL, usd NUMERIC, secs DOUBLE PRECISION)"
    )
    assert sqlite_sql[1] == pg_sql[1] == "CREATE INDEX IF NOT EXISTS things_by_name ON things (name, at)"
    assert THINGS.insert("sqlite").endswith("VALUES (?, ?, ?, ?, ?, ?)")
    assert THINGS.insert("postgresql").endswith("VALUES (%s, %s, %s, %s, %s, %s)")
    assert render("SELECT 1 WHERE a = ? AND b = ?", "postgresql") == "SELECT 1 WHERE a = %s AND b = %s"
    with pytest.raises(ValueError, match="unknown column type"):
        Column("x", "money")


def test_sqlite_keeps_decimals_and_timestamps_exact(tmp_path: Path) -> None:
    db = SQLiteDatabase(parse_target(tmp_path / "t.db", key="things_db"), key="things_db")
    db.ensure(THINGS_V1)
    adapt = THINGS.adapter("sqlite")
    assert adapt is not None and THINGS.adapter("postgresql") is None
    at = datetime(2025, 6, 1, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    db.executemany(THINGS.insert("sqlite"), [adapt((at, "a", 2**40, True, Decimal("1E-9"), 0.5))])
    assert db.query("SELECT at, typeof(at), n, ok, usd FROM things") == [
        (1748770200000000, "integer", 2**40, 1, "0.000000001")  # 09:30 UTC, in microseconds
    ]
    assert from_micros(db.query("SELECT at FROM things")[0][0]) == at.astimezone(UTC)
    db.close()


# ISO text as schema versions before integer timestamps wrote it, and a few spellings SQLite's date functions
# also read; each with the instant it means.
OLD_STAMPS = [
    ("2025-06-01T09:30:00.123456+00:00", datetime(2025, 6, 1, 9, 30, 0, 123456, tzinfo=UTC)),
    ("2025-06-01T09:30:00.000000+00:00", datetime(2025, 6, 1, 9, 30, tzinfo=UTC)),
    ("2025-06-01T23:59:59.999999+00:00", datetime(2025, 6, 1, 23, 59, 59, 999999, tzinfo=UTC)),
    ("1969-12-31T23:59:59.999999+00:00", datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ("2025-06-01T11:30:00.000001+02:00", datetime(2025, 6, 1, 9, 30, 0, 1, tzinfo=UTC)),
    ("2025-06-01T09:30:00+00:00", datetime(2025, 6, 1, 9, 30, tzinfo=UTC)),
    ("2025-06-01T09:30:00Z", datetime(2025, 6, 1, 9, 30, tzinfo=UTC)),
]


def test_a_table_of_iso_text_timestamps_is_rebuilt_with_integers(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    conn = sqlite3.connect(path)
    old = THINGS.create("sqlite")
    for sql in old:
        conn.execute(sql.replace("at INTEGER", "at TEXT"))  # the table as version 1 created it
    conn.execute(f"CREATE TABLE {VERSION_TABLE.name} (component TEXT NOT NULL, version INTEGER NOT NULL, "
                 "PRIMARY KEY (component))")  # fmt: skip
    conn.execute(f"INSERT INTO {VERSION_TABLE.name} VALUES ('things', 1)")
    for i, (text, _) in enumerate(OLD_STAMPS):
        conn.execute("INSERT INTO things (id, at, name, n, ok, usd, secs) VALUES (?, ?, ?, ?, 1, '0.1', NULL)",
                     (10 + i, text, f"n{i}", i))  # fmt: skip
    conn.commit()
    conn.close()
    v2 = Component("things", 2, (THINGS,), lock_id=1, config_key="things_db",
                   migrations=((2, (IntegerTimestamps(THINGS),)),))  # fmt: skip
    db = SQLiteDatabase(parse_target(path, key="things_db"), key="things_db")
    db.ensure(v2)
    db.ensure(v2)  # once only
    got = db.query("SELECT id, at, typeof(at), name, n, usd FROM things ORDER BY id")
    assert got == [(10 + i, micros(when), "integer", f"n{i}", i, "0.1") for i, (_, when) in enumerate(OLD_STAMPS)]
    assert db.query("SELECT version FROM spendmeter_schema_version WHERE component = 'things'") == [(2,)]
    assert ("at", "INTEGER") in [(r[1], r[2]) for r in db.query("PRAGMA table_info(things)")]
    assert [r[1] for r in db.query("PRAGMA index_list(things)")] == ["things_by_name"]
    db.executemany(THINGS.insert("sqlite"), [THINGS.adapter("sqlite")((OLD_STAMPS[0][1], "new", 1, True, None, None))])
    assert db.query("SELECT id, typeof(at) FROM things WHERE name = 'new'") == [(10 + len(OLD_STAMPS), "integer")]
    db.close()
    assert IntegerTimestamps(THINGS).statements("postgresql") == []


def test_a_rebuild_that_fails_leaves_the_old_table_and_version_whole(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    conn = sqlite3.connect(path)
    for sql in THINGS.create("sqlite"):
        conn.execute(sql.replace("at INTEGER", "at TEXT"))
    conn.execute(f"CREATE TABLE {VERSION_TABLE.name} (component TEXT NOT NULL, version INTEGER NOT NULL, "
                 "PRIMARY KEY (component))")  # fmt: skip
    conn.execute(f"INSERT INTO {VERSION_TABLE.name} VALUES ('things', 1)")
    for text in (OLD_STAMPS[0][0], "not a time", OLD_STAMPS[1][0]):  # converts to NULL: NOT NULL refuses it
        conn.execute("INSERT INTO things (at, name, n, ok) VALUES (?, 'x', 1, 1)", (text,))
    conn.commit()
    conn.close()
    v2 = Component("things", 2, (THINGS,), lock_id=1, config_key="things_db",
                   migrations=((2, (IntegerTimestamps(THINGS),)),))  # fmt: skip
    db = SQLiteDatabase(parse_target(path, key="things_db"), key="things_db")
    with pytest.raises(ConfigError, match="things"):
        db.ensure(v2)
    assert db.query("SELECT at FROM things ORDER BY id") == [(OLD_STAMPS[0][0],), ("not a time",), (OLD_STAMPS[1][0],)]
    assert db.query("SELECT version FROM spendmeter_schema_version") == [(1,)]
    assert [r[1] for r in db.query("PRAGMA index_list(things)")] == ["things_by_name"]
    db.close()


def test_versions_are_recorded_per_component_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    db = SQLiteDatabase(str(path), key="things_db")
    db.ensure(THINGS_V1)
    db.ensure(Component("other", 3, (), lock_id=2, config_key="x"))
    db.ensure(THINGS_V1)  # idempotent
    assert sorted(db.query("SELECT component, version FROM spendmeter_schema_version")) == [("other", 3), ("things", 1)]
    db.execute("UPDATE spendmeter_schema_version SET version = 2 WHERE component = 'things'")
    with pytest.raises(ConfigError, match="newer than this spendmeter understands") as info:
        db.ensure(THINGS_V1)
    assert info.value.key == "things_db" and "point things_db elsewhere" in str(info.value)
    db.close()


def test_sqlite_connections_are_per_thread_and_a_failed_write_rolls_back(tmp_path: Path) -> None:
    db = SQLiteDatabase(str(tmp_path / "t.db"))
    db.ensure(THINGS_V1)
    seen: list[sqlite3.Connection] = []
    t = threading.Thread(target=lambda: seen.append(db.connection()))
    t.start()
    t.join()
    assert seen[0] is not db.connection() and db.connection() is db.connection()
    assert db.query("PRAGMA journal_mode") == [("wal",)]
    row = (datetime.now(UTC).isoformat(), "a", 1, 1, None, None)
    with pytest.raises(sqlite3.IntegrityError):
        db.executemany(THINGS.insert("sqlite"), [row, (None, *row[1:])])  # NOT NULL on the second
    assert db.query("SELECT COUNT(*) FROM things") == [(0,)]
    first = db.connection()
    db.reset()
    assert db.connection() is not first
    db.close()


def test_an_unusable_sqlite_path_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot open the SQLite file") as info:
        SQLiteDatabase(str(tmp_path / "file" / "x.db"), key="ledger")
    assert info.value.key == "ledger"
