"""Spend stores: how much each (budget, scope key, period) has spent, as exact integer nano-dollars, and what
calls in flight have reserved (see `spendmeter.budgets.spend` for the amounts and the interface).

Three stores, one interface (`add`, `reserve`, `settle`, `reserved`, `expire`, `get`, `top`,
`count_at_least`, `prune`, `close`):
- `MemoryStore`: one process (`spendmeter.budgets.spend`).
- `SQLiteStore`: one file shared by the processes of one host (`spendmeter.storage.sqlite`).
- `PostgresStore`: one database shared by every worker on every host, through a `psycopg_pool`
  connection pool (`spendmeter.storage.postgres`).
The two SQL stores share the table definitions and statements (`spendmeter.storage.schema` renders them for
each dialect). A reservation is atomic: SQLite runs it in a BEGIN IMMEDIATE transaction (the write lock is
held from the first read, across processes); PostgreSQL locks the spend rows (`SELECT ... FOR UPDATE`, keys
in a fixed order so two reservations cannot deadlock) before it reads the reservations and adds its own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from spendmeter.budgets.spend import (
    MAX_NANO,
    NANO_PER_USD,
    Claim,
    MemoryStore,
    Settlement,
    SpendKey,
    SpendStore,
    admits,
    from_nano,
    to_nano,
)
from spendmeter.storage import Column, Component, Database, Table, Target, parse_target, render
from spendmeter.storage.postgres import PostgresDatabase  # psycopg itself is imported only when one is opened
from spendmeter.storage.sqlite import SQLiteDatabase

TABLE = "spendmeter_budget_spend"
HOLDS = "spendmeter_budget_reservations"
SCHEMA_VERSION = 2  # 2: the reservations table (created when a version-1 store is opened)

__all__ = [
    "MAX_NANO",
    "NANO_PER_USD",
    "MemoryStore",
    "PostgresStore",
    "SQLiteStore",
    "SpendKey",
    "SpendStore",
    "from_nano",
    "open_store",
    "storable_key",
    "to_nano",
]


def storable_key(key: str) -> str:
    """A key every database stores: PostgreSQL text refuses NUL, so it is written as U+FFFD (the label
    policy already shortened long values); the same call always maps to the same key."""
    return key.replace("\x00", "\ufffd") if "\x00" in key else key


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
HOLDS_TABLE = Table(
    HOLDS,
    (
        Column("res_id", "text", not_null=True),
        Column("budget", "text", not_null=True),
        Column("period_start", "text", not_null=True),
        Column("scope_key", "text", not_null=True),
        Column("reserved_nano_usd", "bigint", not_null=True),
        Column("expires_at", "float", not_null=True),  # Unix time: comparable across hosts
    ),
    primary_key=("res_id", "budget", "period_start", "scope_key"),
    indexes=((f"{HOLDS}_by_key", ("budget", "period_start", "scope_key", "expires_at")),),
)
SPEND = Component("spend", SCHEMA_VERSION, (SPEND_TABLE, HOLDS_TABLE), lock_id=0x5350454E44,  # "SPEND"
                  config_key="store")  # fmt: skip

# Written once with `?`, rendered per dialect.
_GET = f"SELECT spent_nano_usd FROM {TABLE} WHERE budget = ? AND period_start = ? AND scope_key = ?"
_TOP = (
    f"SELECT scope_key, spent_nano_usd FROM {TABLE} WHERE budget = ? AND period_start = ? "
    "AND spent_nano_usd >= ? ORDER BY spent_nano_usd DESC, scope_key LIMIT ?"
)
_COUNT = f"SELECT COUNT(*) FROM {TABLE} WHERE budget = ? AND period_start = ? AND spent_nano_usd >= ?"
_PRUNE = f"DELETE FROM {TABLE} WHERE budget = ? AND period_start < ?"
_HELD = (
    f"SELECT COALESCE(SUM(reserved_nano_usd), 0) FROM {HOLDS} "
    "WHERE budget = ? AND period_start = ? AND scope_key = ? AND expires_at > ?"
)
_HOLD = (
    f"INSERT INTO {HOLDS} (res_id, budget, period_start, scope_key, reserved_nano_usd, expires_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_RELEASE = f"DELETE FROM {HOLDS} WHERE res_id = ?"
_RESERVED = (
    f"SELECT scope_key, SUM(reserved_nano_usd) FROM {HOLDS} WHERE budget = ? AND period_start = ? "
    "AND expires_at > ? GROUP BY scope_key"
)
_EXPIRE = f"DELETE FROM {HOLDS} WHERE expires_at <= ?"
# PostgreSQL: a row to lock must exist before FOR UPDATE can serialize two reservations of a new key.
_ENSURE_ROW = (
    f"INSERT INTO {TABLE} (budget, period_start, scope_key, spent_nano_usd) VALUES (?, ?, ?, 0) "
    "ON CONFLICT (budget, period_start, scope_key) DO NOTHING"
)
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


def _merged(items: Sequence[tuple[SpendKey, int]]) -> list[tuple[SpendKey, int]]:
    """One row per key (ON CONFLICT cannot touch a row twice in one statement), in a fixed order, so two
    writers locking the same rows take the locks in the same order and cannot deadlock."""
    merged: dict[SpendKey, int] = {}
    for key, nano in items:
        merged[key] = merged.get(key, 0) + nano
    return sorted(merged.items(), key=lambda kv: tuple(str(part) for part in kv[0]))


class _SQLStore:
    """The spend tables in one database (either dialect). Connects and creates the tables at construction."""

    local = False  # network or file I/O: the engine calls it under a deadline, off the caller's thread

    def __init__(self, db: Database) -> None:
        self.db = db
        d = db.dialect
        self._pg = d == "postgresql"
        (self._get, self._top, self._count, self._prune, self._held, self._hold, self._release, self._reserved,
         self._expire, self._ensure_row, self._add_one) = (
            render(q, d) for q in (_GET, _TOP, _COUNT, _PRUNE, _HELD, _HOLD, _RELEASE, _RESERVED, _EXPIRE,
                                   _ENSURE_ROW, _ADD_SQLITE)
        )  # fmt: skip
        self._lock_row = self._get + (" FOR UPDATE" if self._pg else "")
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

    def reserve(
        self, rid: str, claims: Sequence[Claim], nano: int, expires_at: float, now: float
    ) -> tuple[int | None, list[int]]:
        def work(one: Any) -> tuple[int | None, list[int]]:
            used: list[int] = []
            for (budget, key, period), _limit, _strict in claims:  # the engine passes them sorted
                if self._pg:
                    one(self._ensure_row, (budget, period, key))
                rows = one(self._lock_row, (budget, period, key))
                spent = int(rows[0][0]) if rows else 0
                used.append(spent + int(one(self._held, (budget, period, key, now))[0][0]))
            for i, ((_key, limit, strict), u) in enumerate(zip(claims, used, strict=True)):
                if not admits(u, limit, nano, strict):
                    return i, used
            if nano > 0:
                for (budget, key, period), _limit, _strict in claims:
                    one(self._hold, (rid, budget, period, key, nano, expires_at))
            return None, used

        return self.db.run(work)  # type: ignore[attr-defined]

    def settle(self, settlements: Sequence[Settlement]) -> None:
        if not settlements:
            return
        rows = _merged([item for _rid, items in settlements for item in items])
        rids = [rid for rid, _items in settlements if rid is not None]

        def work(one: Any) -> None:
            for rid in rids:
                one(self._release, (rid,))
            if self._pg and rows:
                one(_ADD_POSTGRES, ([b for (b, _k, _p), _n in rows], [p for (_b, _k, p), _n in rows],
                                    [k for (_b, k, _p), _n in rows], [n for _key, n in rows]))  # fmt: skip
            else:
                for (budget, key, period), nano in rows:
                    one(self._add_one, (budget, period, key, nano))

        self.db.run(work)  # type: ignore[attr-defined]

    def add(self, items: Sequence[tuple[SpendKey, int]]) -> None:
        if items:
            self.settle([(None, items)])

    def reserved(self, budget: str, period: str, now: float) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.db.query(self._reserved, (budget, period, now)) if v}

    def expire(self, now: float) -> int:
        return self.db.execute(self._expire, (now,))

    def close(self) -> None:
        self.db.close()


class SQLiteStore(_SQLStore):
    """A SQLite file shared by the processes of one host, surviving restarts (WAL, per-thread connections,
    reopened after fork; `busy_timeout_s` makes a writer wait for the lock instead of failing: the engine
    never waits for it on a caller's thread, see `BudgetEngine(store_timeout_s=)`)."""

    def __init__(self, path: str | Target, *, busy_timeout_s: float = 5.0) -> None:
        target = path if isinstance(path, Target) else parse_target(path, key="store")
        self.path = target.path
        self.busy_timeout_s = busy_timeout_s
        super().__init__(SQLiteDatabase(target, key="store", busy_timeout_s=busy_timeout_s))


class PostgresStore(_SQLStore):
    """One PostgreSQL database shared by every worker on every host. Thread-safe and fork-safe; at most
    `max_connections` per process (a `psycopg_pool.ConnectionPool`, `self.pool`). Connects and creates the
    tables at construction, so a wrong DSN fails at `init()`, not at the first call."""

    def __init__(self, dsn: str | Target, *, max_connections: int = 8, connect_timeout_s: float = 10.0) -> None:
        target = dsn if isinstance(dsn, Target) else parse_target(dsn, key="store", allow_path=False)
        if target.kind != "postgresql":
            raise ValueError(f"not a PostgreSQL DSN: {target!r}")
        self.max_connections = max_connections
        self._pgdb = PostgresDatabase(target, key="store", what="the spend store", max_size=max_connections,
                                      connect_timeout_s=connect_timeout_s)  # fmt: skip
        super().__init__(self._pgdb)

    @property
    def pool(self) -> Any:
        """This process's `psycopg_pool.ConnectionPool`."""
        return self._pgdb.pool


def open_store(store: str | os.PathLike[str] | Target | None, *, max_connections: int = 8) -> SpendStore:
    """The store a `BudgetConfig` names: memory when `store` is None, PostgreSQL for a `postgresql://` DSN
    (or `env:VAR` naming one), else the SQLite file (a path or `sqlite:///path`)."""
    if store is None:
        return MemoryStore()
    target = store if isinstance(store, Target) else parse_target(store, key="store")
    if target.kind == "postgresql":
        return PostgresStore(target, max_connections=max_connections)
    return SQLiteStore(target)
