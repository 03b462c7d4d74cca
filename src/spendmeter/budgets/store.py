"""Spend stores: how much each (budget, scope key, period) has spent, as exact integer nano-dollars.

Amounts are integers (1 USD = 10**9 nano-USD) so that sums over millions of calls are exact: a call priced
at $0.0000015 (one token at $1.50 per million) keeps its value, where micro-dollars would round it away.
A 64-bit column holds up to ~$9.2 billion per row.

Three stores, one small interface (`add`, `get`, `top`, `count_at_least`, `prune`, `close`):
- `MemoryStore`: one process.
- `SQLiteStore`: one file shared by the processes of one host (`spendmeter.storage.sqlite`).
- `PostgresStore`: one database shared by every worker on every host, through a `psycopg_pool`
  connection pool (`spendmeter.storage.postgres`).
The two SQL stores share one table definition and the same statements (`spendmeter.storage.schema` renders
them for each dialect); only `add()` differs, to be one round trip on PostgreSQL.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Protocol

from spendmeter.storage import Column, Component, Database, Table, Target, parse_target, render
from spendmeter.storage.postgres import PostgresDatabase  # psycopg itself is imported only when one is opened
from spendmeter.storage.sqlite import SQLiteDatabase

NANO_PER_USD = 10**9
TABLE = "spendmeter_budget_spend"
SCHEMA_VERSION = 1

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

    def __repr__(self) -> str:
        return "MemoryStore()"

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


SPEND_TABLE = Table(
    TABLE,
    (
        Column("budget", "text", not_null=True),
        Column("period_start", "text", not_null=True),
        Column("scope_key", "text", not_null=True),
        Column("spent_nano_usd", "bigint", not_null=True),
    ),
    primary_key=("budget", "period_start", "scope_key"),
    # Serves top() and count_at_least() without reading every key of a 100k-user period.
    indexes=((f"{TABLE}_by_spend", ("budget", "period_start", "spent_nano_usd")),),
)
SPEND = Component("spend", SCHEMA_VERSION, (SPEND_TABLE,), lock_id=0x5350454E44, config_key="store")  # "SPEND"

# Written once with `?`, rendered per dialect.
_GET = f"SELECT spent_nano_usd FROM {TABLE} WHERE budget = ? AND period_start = ? AND scope_key = ?"
_TOP = (
    f"SELECT scope_key, spent_nano_usd FROM {TABLE} WHERE budget = ? AND period_start = ? "
    "AND spent_nano_usd >= ? ORDER BY spent_nano_usd DESC, scope_key LIMIT ?"
)
_COUNT = f"SELECT COUNT(*) FROM {TABLE} WHERE budget = ? AND period_start = ? AND spent_nano_usd >= ?"
_PRUNE = f"DELETE FROM {TABLE} WHERE budget = ? AND period_start < ?"
# The add is an upsert done by the database (`spent = spent + excluded.spent`), never a read-modify-write in
# Python, so concurrent writers in other processes or hosts cannot lose an update. SQLite: one statement per
# amount in one transaction. PostgreSQL: one statement for all of a call's budgets (atomic, one round trip).
_ADD_SQLITE = (
    f"INSERT INTO {TABLE} (budget, period_start, scope_key, spent_nano_usd) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (budget, period_start, scope_key) "
    "DO UPDATE SET spent_nano_usd = spent_nano_usd + excluded.spent_nano_usd"
)
_ADD_POSTGRES = (
    f"INSERT INTO {TABLE} AS t (budget, period_start, scope_key, spent_nano_usd) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[]) "
    "ON CONFLICT (budget, period_start, scope_key) "
    "DO UPDATE SET spent_nano_usd = t.spent_nano_usd + excluded.spent_nano_usd"
)


class _SQLStore:
    """The spend table in one database (either dialect). Connects and creates the table at construction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        d = db.dialect
        self._get, self._top, self._count, self._prune = (render(q, d) for q in (_GET, _TOP, _COUNT, _PRUNE))
        try:
            db.ensure(SPEND)
        except BaseException:
            db.close()
            raise

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.db.target.redacted!r})"

    def get(self, budget: str, key: str, period: str) -> int:
        rows = self.db.query(self._get, (budget, period, key))
        return int(rows[0][0]) if rows else 0

    def top(self, budget: str, period: str, min_nano: int, limit: int) -> list[tuple[str, int]]:
        return [(str(k), int(v)) for k, v in self.db.query(self._top, (budget, period, min_nano, limit))]

    def count_at_least(self, budget: str, period: str, nano: int) -> int:
        return int(self.db.query(self._count, (budget, period, nano))[0][0])

    def prune(self, budget: str, before_period: str) -> int:
        return self.db.execute(self._prune, (budget, before_period))

    def close(self) -> None:
        self.db.close()


class SQLiteStore(_SQLStore):
    """A SQLite file shared by the processes of one host, surviving restarts (WAL, per-thread connections,
    reopened after fork; `busy_timeout_s` makes a writer wait for the lock instead of failing)."""

    def __init__(self, path: str | Target, *, busy_timeout_s: float = 30.0) -> None:
        target = path if isinstance(path, Target) else parse_target(path, key="store")
        self.path = target.path
        self.busy_timeout_s = busy_timeout_s
        super().__init__(SQLiteDatabase(target, key="store", busy_timeout_s=busy_timeout_s))

    def add(self, items: Sequence[tuple[SpendKey, int]]) -> None:
        if items:
            self.db.executemany(_ADD_SQLITE, [(budget, period, key, nano) for (budget, key, period), nano in items])


class PostgresStore(_SQLStore):
    """One PostgreSQL database shared by every worker on every host. Thread-safe and fork-safe; at most
    `max_connections` per process (a `psycopg_pool.ConnectionPool`, `self.pool`). Connects and creates the
    table at construction, so a wrong DSN fails at `init()`, not at the first call."""

    def __init__(self, dsn: str | Target, *, max_connections: int = 8, connect_timeout_s: float = 10.0) -> None:
        target = dsn if isinstance(dsn, Target) else parse_target(dsn, key="store", allow_path=False)
        if target.kind != "postgresql":
            raise ValueError(f"not a PostgreSQL DSN: {target!r}")
        self.max_connections = max_connections
        self._pg = PostgresDatabase(target, key="store", what="the spend store", max_size=max_connections,
                                    connect_timeout_s=connect_timeout_s)  # fmt: skip
        super().__init__(self._pg)

    @property
    def pool(self) -> Any:
        """This process's `psycopg_pool.ConnectionPool`."""
        return self._pg.pool

    def add(self, items: Sequence[tuple[SpendKey, int]]) -> None:
        if not items:
            return
        # One row per key (ON CONFLICT cannot touch a row twice in one statement), in a fixed order, so two
        # writers locking the same rows take the locks in the same order and cannot deadlock.
        merged: dict[SpendKey, int] = {}
        for key, nano in items:
            merged[key] = merged.get(key, 0) + nano
        rows = sorted(merged.items())
        budgets = [b for (b, _k, _p), _n in rows]
        keys = [k for (_b, k, _p), _n in rows]
        periods = [p for (_b, _k, p), _n in rows]
        self.db.execute(_ADD_POSTGRES, (budgets, periods, keys, [n for _key, n in rows]))


def open_store(store: str | os.PathLike[str] | Target | None, *, max_connections: int = 8) -> SpendStore:
    """The store a `BudgetConfig` names: memory when `store` is None, PostgreSQL for a `postgresql://` DSN
    (or `env:VAR` naming one), else the SQLite file (a path or `sqlite:///path`)."""
    if store is None:
        return MemoryStore()
    target = store if isinstance(store, Target) else parse_target(store, key="store")
    if target.kind == "postgresql":
        return PostgresStore(target, max_connections=max_connections)
    return SQLiteStore(target)
