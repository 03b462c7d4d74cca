"""A SQLite ledger during an upgrade to schema 4: rows that a process of the previous version (opened before
the rebuild, still running) writes with ISO text timestamps are converted by the new writer, and read right."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from spendmeter.analytics import LedgerSource, Window, total
from spendmeter.call import Attribution, Call, Cost, Usage
from spendmeter.sinks import ledger
from spendmeter.sinks.ledger import COLUMN_NAMES, TABLE, LedgerSink
from spendmeter.storage.schema import micros

T0 = datetime(2026, 5, 1, 9, tzinfo=UTC)


def make_call(i: int) -> Call:
    call = Call("openai", "chat", "gpt-4o-mini", Attribution(user="new"), started_at=T0 + timedelta(hours=1, seconds=i))
    call.usage = Usage(input=10, output=5, source="reported")
    call.cost = Cost(Decimal("0.25"), Decimal(0), Decimal(0), Decimal("0.25"), total=Decimal("0.5"), source="test",
                     price_entry="gpt-4o-mini")
    call.ended_at, call.duration_s, call.end_reason = call.started_at + timedelta(seconds=1), 1.0, "completed"
    return call


def old_writer_insert(path: Path, n: int, first: int = 0) -> None:
    """Rows as a schema-3 spendmeter writes them: every column, timestamps as ISO-8601 text."""
    conn = sqlite3.connect(path)
    for i in range(first, first + n):
        values = {name: None for name in COLUMN_NAMES} | {
            "started_at": (T0 + timedelta(minutes=i)).isoformat(timespec="microseconds"),
            "ended_at": (T0 + timedelta(minutes=i, seconds=1)).isoformat(timespec="microseconds"),
            "provider": "openai", "operation": "chat", "model": "gpt-4o-mini", "user_id": "old", "stream": 0,
            "batch": 0, "status": "ok", "attempts": 1, "input_tokens": 1, "cache_read_tokens": 0,
            "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0, "output_tokens": 1, "reasoning_tokens": 0,
            "usage_source": "reported", "cost_total_usd": "0.5"}  # fmt: skip
        conn.execute(f"INSERT INTO {TABLE} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                     list(values.values()))  # fmt: skip
    conn.commit()
    conn.close()


def stamps(path: Path) -> list[tuple[int, str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT id, typeof(started_at), typeof(ended_at) FROM {TABLE} ORDER BY id").fetchall()
    finally:
        conn.close()


def test_rows_an_older_writer_adds_after_the_rebuild_are_converted_by_the_next_batch(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    sink = LedgerSink(path)
    sink.on_call(make_call(0))
    assert sink.flush()
    old_writer_insert(path, 3, first=10)  # the old process goes on writing into the rebuilt table
    assert {t for _, t, _ in stamps(path)} == {"integer", "text"}
    sink.on_call(make_call(1))
    assert sink.flush()
    got = stamps(path)
    assert len(got) == 5 and {(s, e) for _, s, e in got} == {("integer", "integer")}
    conn = sqlite3.connect(path)
    old = conn.execute(f"SELECT started_at, ended_at FROM {TABLE} WHERE user_id = 'old' ORDER BY id").fetchall()
    conn.close()
    assert old == [(micros(T0 + timedelta(minutes=i)), micros(T0 + timedelta(minutes=i, seconds=1)))
                   for i in range(10, 13)]  # fmt: skip
    sink.close()
    src = LedgerSource.open(f"sqlite:///{path}")
    in_window = total(src, Window(T0 + timedelta(minutes=10), T0 + timedelta(minutes=12)))  # two of them
    src.close()
    assert (in_window.calls, in_window.cost) == (2, Decimal("1.0"))


def test_existing_rows_are_checked_a_bounded_number_per_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ledger.db"
    LedgerSink(path).close()  # a schema-4 file, empty
    old_writer_insert(path, 12)  # ids 1..12, written before this process opens the file
    monkeypatch.setattr(ledger, "STRAY_CHECK_ROWS", 5)
    sink = LedgerSink(path)
    texts = []
    for i in range(4):
        sink.on_call(make_call(i))
        assert sink.flush()
        texts.append(sum(1 for _, s, _ in stamps(path) if s == "text"))
    sink.close()
    assert texts == [7, 2, 0, 0]  # ids 1-5, 6-10, 11-15: then every row is checked
