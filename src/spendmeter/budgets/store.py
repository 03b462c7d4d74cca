"""Spend stores: how much each (budget, scope key, period) has spent, as exact integer nano-dollars.

Amounts are integers (1 USD = 10**9 nano-USD) so that sums over millions of calls are exact: a call priced
at $0.0000015 (one token at $1.50 per million) keeps its value, where micro-dollars would round it away.
An int64 column holds up to ~$9.2 billion per row.

The interface is five methods so another backend (PostgreSQL: the same SQL, `%s` placeholders) is small:
`add`, `get`, `top`, `count_at_least`, `prune`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Protocol

log = logging.getLogger("spendmeter")

NANO_PER_USD = 10**9
TABLE = "spendmeter_budget_spend"

# (budget name, scope key, period start as ISO date) -> nano-USD to add
SpendKey = tuple[str, str, str]


def to_nano(amount_usd: Decimal) -> int:
    return int((amount_usd * NANO_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_nano(nano: int) -> Decimal:
    return Decimal(nano).scaleb(-9)


class SpendStore(Protocol):
    def add(self, items: Sequence[tuple[SpendKey, int]]) -> None:
        """Add every amount, all or none: a call's spend lands in all its budgets at once."""

    def get(self, budget: str, key: str, period: str) -> int:
        """Spent so far (nano-USD); 0 when nothing was recorded."""

    def top(self, budget: str, period: str, min_nano: int, limit: int) -> list[tuple[str, int]]:
        """Keys with spend >= min_nano, highest first, at most `limit`."""

    def count_at_least(self, budget: str, period: str, nano: int) -> int:
        """How many keys have spend >= nano."""

    def prune(self, budget: str, before_period: str) -> int:
        """Forget periods that started before `before_period`; returns rows removed."""

    def close(self) -> None: ...


class MemoryStore:
    """One process, thread-safe. Lost on restart; each worker process has its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spend: dict[tuple[str, str], dict[str, int]] = {}  # (budget, period) -> key -> nano

    def add(self, items: Sequence[tuple[SpendKey, int]]) -> None:
        with self._lock:
            for (budget, key, period), nano in items:
                keys = self._spend.setdefault((budget, period), {})
                keys[key] = keys.get(key, 0) + nano

    def get(self, budget: str, key: str, period: str) -> int:
        with self._lock:
            return self._spend.get((budget, period), {}).get(key, 0)

    def top(self, budget: str, period: str, min_nano: int, limit: int) -> list[tuple[str, int]]:
        with self._lock:
            rows = [(k, v) for k, v in self._spend.get((budget, period), {}).items() if v >= min_nano]
        rows.sort(key=lambda kv: (-kv[1], kv[0]))
        return rows[:limit]

    def count_at_least(self, budget: str, period: str, nano: int) -> int:
        with self._lock:
            return sum(1 for v in self._spend.get((budget, period), {}).values() if v >= nano)

    def prune(self, budget: str, before_period: str) -> int:
        with self._lock:
            old = [bp for bp in self._spend if bp[0] == budget and bp[1] < before_period]
            removed = sum(len(self._spend.pop(bp)) for bp in old)
        return removed

    def close(self) -> None:
        pass


_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        budget TEXT NOT NULL,
        period_start TEXT NOT NULL,
        scope_key TEXT NOT NULL,
        spent_nano_usd INTEGER NOT NULL,
        PRIMARY KEY (budget, period_start, scope_key)
    )""",
    # Serves top() and count_at_least() without reading every key of a 100k-user period.
    f"CREATE INDEX IF NOT EXISTS {TABLE}_by_spend ON {TABLE} (budget, period_start, spent_nano_usd)",
)
# One statement per amount, atomic on its own; no read-modify-write in Python, so concurrent writers
# in other processes cannot lose an update.
_ADD = (
    f"INSERT INTO {TABLE} (budget, period_start, scope_key, spent_nano_usd) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (budget, period_start, scope_key) "
    "DO UPDATE SET spent_nano_usd = spent_nano_usd + excluded.spent_nano_usd"
)
_GET = f"SELECT spent_nano_usd FROM {TABLE} WHERE budget = ? AND period_start = ? AND scope_key = ?"
_TOP = (
    f"SELECT scope_key, spent_nano_usd FROM {TABLE} WHERE budget = ? AND period_start = ? "
    "AND spent_nano_usd >= ? ORDER BY spent_nano_usd DESC, scope_key LIMIT ?"
)
_COUNT = f"SELECT COUNT(*) FROM {TABLE} WHERE budget = ? AND period_start = ? AND spent_nano_usd >= ?"
_PRUNE = f"DELETE FROM {TABLE} WHERE budget = ? AND period_start < ?"


class SQLiteStore:
    """A SQLite file shared by the processes of one host, surviving restarts.

    WAL mode lets readers (the pre-call check) run while a writer commits. Each thread has its own
    connection (reopened after fork: a connection must never cross a fork). `busy_timeout_s` makes a
    writer wait for the lock instead of failing with "database is locked".
    """

    def __init__(self, path: str, *, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        conn = self._conn()
        # journal_mode=WAL is stored in the file; set once here, not per connection.
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("spendmeter budgets: %s is not in WAL mode (%s); writers may wait longer", path, mode)
        self._write(conn, _SCHEMA, ())

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a write takes the lock up front
        # and waits for it (busy timeout) rather than failing on a read-to-write upgrade.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        # NORMAL is durable across application crashes in WAL mode; only an OS crash or power loss can
        # lose the last commits, an acceptable trade for budget accounting at ~1 fsync per checkpoint.
        conn.execute("PRAGMA synchronous = NORMAL")
        self._local.conn = conn
        self._local.pid = os.getpid()
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _write(self, conn: sqlite3.Connection, statements: Iterable[str], params: Sequence[tuple]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql in statements:
                if params:
                    conn.executemany(sql, params)
                else:
                    conn.execute(sql)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def add(self, items: Sequence[tuple[SpendKey, int]]) -> None:
        if not items:
            return
        params = [(budget, period, key, nano) for (budget, key, period), nano in items]
        self._write(self._conn(), (_ADD,), params)

    def get(self, budget: str, key: str, period: str) -> int:
        row = self._conn().execute(_GET, (budget, period, key)).fetchone()
        return int(row[0]) if row else 0

    def top(self, budget: str, period: str, min_nano: int, limit: int) -> list[tuple[str, int]]:
        rows = self._conn().execute(_TOP, (budget, period, min_nano, limit)).fetchall()
        return [(str(k), int(v)) for k, v in rows]

    def count_at_least(self, budget: str, period: str, nano: int) -> int:
        return int(self._conn().execute(_COUNT, (budget, period, nano)).fetchone()[0])

    def prune(self, budget: str, before_period: str) -> int:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            removed = conn.execute(_PRUNE, (budget, before_period)).rowcount
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(removed)

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover - closing a connection of a dead fork parent
                pass
        self._local = threading.local()


def open_store(store_path: str | None) -> SpendStore:
    """The store a `BudgetConfig` names: memory when `store_path` is None, PostgreSQL for a
    `postgresql://` DSN (or `env:VAR` naming one), else the SQLite file."""
    if store_path is None:
        return MemoryStore()
    if store_path.startswith(("postgresql://", "postgres://", "env:")):
        from spendmeter.budgets.store_postgres import PostgresStore  # psycopg only when asked for

        return PostgresStore(store_path)
    return SQLiteStore(store_path)
