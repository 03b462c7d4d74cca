"""One bad row never costs the others (issue #12): values made storable before the write, a batch the database
still refuses split until only the offending row is left out, every loss counted per row; a deleted ledger
file is noticed and recreated. Real SQLite; the PostgreSQL twin is in tests/e2e/test_postgres_faults.py."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from spendmeter import _contain
from spendmeter.call import Attribution, Call, Usage
from spendmeter.errors import ConfigError
from spendmeter.sinks.ledger import MAX_TEXT, LedgerSink, storable_row

T0 = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)


def make_call(i: int, *, user: str = "alice", output: int = 10, provider: str | None = "openai") -> Call:
    call = Call(provider=provider, operation="chat", request_model="gpt-4o-mini",  # type: ignore[arg-type]
                attribution=Attribution(user=user), started_at=T0 + timedelta(seconds=i))  # fmt: skip
    call.usage = Usage(input=5, output=output, source="reported")
    call.ended_at = call.started_at
    return call


def count(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM spendmeter_ledger").fetchone()[0]


@pytest.fixture(autouse=True)
def fresh_counts():
    _contain.reset()
    yield
    _contain.reset()


def test_nul_bytes_huge_strings_and_absurd_numbers_are_stored_not_refused(tmp_path) -> None:
    path = tmp_path / "ledger.db"
    sink = LedgerSink(f"sqlite:///{path}", batch_size=500)
    for i in range(499):
        sink.on_call(make_call(i))
    sink.on_call(make_call(499, user="nul\x00in the middle" + "x" * 10_000, output=10**19))
    sink.close()
    assert count(path) == 500 and sink.failed_rows == 0
    with sqlite3.connect(path) as conn:
        user, output = conn.execute("SELECT user_id, output_tokens FROM spendmeter_ledger WHERE id = 500").fetchone()
    assert "\x00" not in user and len(user) == MAX_TEXT and user.startswith("nul\ufffdin the middle")
    assert output == 2**63 - 1
    print("\nRELIABILITY: ledger, 500-row batch with NUL + 10 KB user id + 10^19 tokens: 500 stored, 0 lost")


def test_a_row_the_database_refuses_costs_only_itself(tmp_path) -> None:
    path = tmp_path / "ledger.db"
    sink = LedgerSink(f"sqlite:///{path}", batch_size=500)
    for i in range(500):
        # provider is NOT NULL: the database refuses these two rows whatever we do to their values
        sink.on_call(make_call(i, provider=None if i in (17, 400) else "openai"))
    sink.close()
    assert count(path) == 498
    assert sink.failed_rows == 2 and sink.written == 498
    assert _contain.counts()["ledger.write_failed"] == 2  # per row, not per batch
    print("\nRELIABILITY: ledger, 500-row batch with 2 rows SQLite refuses (NOT NULL): 498 stored, 2 counted")


def test_storable_row_leaves_good_rows_alone() -> None:
    row = ("a", 1, None, 2.5, True)
    assert storable_row(row) is row
    assert storable_row(("a\x00", -(10**20))) == ("a\ufffd", -(2**63 - 1))


def test_a_deleted_ledger_file_is_recreated_and_counted(tmp_path) -> None:
    path = tmp_path / "ledger.db"
    sink = LedgerSink(f"sqlite:///{path}", flush_interval_s=0.01)
    for i in range(10):
        sink.on_call(make_call(i))
    assert sink.flush()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.unlink(f"{path}{suffix}")
    for i in range(10, 25):
        sink.on_call(make_call(i))
    assert sink.flush()
    sink.close()
    assert count(path) == 15  # every row after the deletion is in the new file
    assert _contain.counts()["storage.sqlite_file_replaced"] >= 1
    print("\nRELIABILITY: ledger file deleted while running: recreated, 15/15 later rows stored, counted")


def test_a_ledger_whose_directory_does_not_exist_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        LedgerSink(f"sqlite:///{tmp_path / 'no' / 'such' / 'ledger.db'}")
    assert not (tmp_path / "no").exists()
