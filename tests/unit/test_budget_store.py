"""Both spend stores honour the same small interface; SQLite specifics (WAL, schema, exact integers)."""

from __future__ import annotations

import sqlite3
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from spendmeter.budgets.store import MemoryStore, SQLiteStore, from_nano, to_nano


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    s = MemoryStore() if request.param == "memory" else SQLiteStore(str(tmp_path / "spend.db"))
    yield s
    s.close()


def test_nano_conversion_is_exact() -> None:
    assert to_nano(Decimal("0.0000015")) == 1500
    assert to_nano(Decimal("12345.123456789")) == 12_345_123_456_789
    assert to_nano(Decimal("0.0000000005")) == 0  # half-even at the nano-dollar
    assert to_nano(Decimal("0.0000000015")) == 2
    assert from_nano(1500) == Decimal("0.0000015")


def test_add_get_top_count_prune(store) -> None:
    store.add([(("b", "alice", "2024-05-01"), 5), (("b", "bob", "2024-05-01"), 7), (("g", "all", "2024-05-01"), 12)])
    store.add([(("b", "alice", "2024-05-01"), 5)])
    store.add([(("b", "alice", "2024-04-01"), 100)])
    assert store.get("b", "alice", "2024-05-01") == 10
    assert store.get("b", "nobody", "2024-05-01") == 0
    assert store.top("b", "2024-05-01", 1, 10) == [("alice", 10), ("bob", 7)]
    assert store.top("b", "2024-05-01", 8, 10) == [("alice", 10)]
    assert store.top("b", "2024-05-01", 1, 1) == [("alice", 10)]
    assert store.count_at_least("b", "2024-05-01", 7) == 2
    assert store.count_at_least("b", "2024-05-01", 11) == 0
    assert store.prune("b", "2024-05-01") == 1
    assert store.get("b", "alice", "2024-04-01") == 0
    assert store.get("b", "alice", "2024-05-01") == 10


def test_threads_sharing_one_store(store) -> None:
    def work(i: int) -> None:
        for _ in range(200):
            store.add([(("b", f"k{i % 2}", "p"), 3), (("g", "all", "p"), 3)])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("g", "all", "p") == 6 * 200 * 3
    assert store.get("b", "k0", "p") + store.get("b", "k1", "p") == 6 * 200 * 3


def test_sqlite_file_is_wal_with_integer_amounts(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "spend.db"  # parent directory is created
    store = SQLiteStore(str(path))
    store.add([(("b", "alice", "2024-05-01"), 1500)])
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    row = conn.execute("SELECT spent_nano_usd, typeof(spent_nano_usd) FROM spendmeter_budget_spend").fetchone()
    assert row == (1500, "integer")
    conn.close()


def test_sqlite_add_is_all_or_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "spend.db"))
    store.add([(("b", "alice", "p"), 1)])
    with pytest.raises(sqlite3.Error):
        store.add([(("b", "alice", "p"), 1), (("b", None, "p"), 1)])  # NOT NULL violation on the second
    assert store.get("b", "alice", "p") == 1
    store.close()
