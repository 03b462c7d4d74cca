"""Storage shared by the call ledger and the budget spend stores: where a store lives (`dsn`), SQLite and
PostgreSQL connections (`sqlite`, `postgres`: per-thread connections, a connection pool, fork safety),
versioned tables rendered for both (`schema`), rows made storable and cheap to bind (`rows`), and the
background batch writer (`batch`).

    target = parse_target("env:SPENDMETER_LEDGER_DSN", key="ledger")   # ConfigError naming the key if bad
    db = open_database(target, key="ledger", what="the ledger database")  # connects now
    db.ensure(component)                  # tables + schema version
    db.query(sql, params) / db.execute(sql, params) / db.executemany(sql, rows)
    db.insert_rows(table, rows)           # a batch of whole rows (PostgreSQL: COPY)

psycopg and psycopg_pool are imported only when a PostgreSQL target is opened.
"""

from __future__ import annotations

from typing import Any, Protocol

from spendmeter.storage.batch import BatchWriter
from spendmeter.storage.dsn import Target, parse_target, redact_dsn
from spendmeter.storage.schema import Column, Component, Dialect, Row, Table, render
from spendmeter.storage.sqlite import SQLiteDatabase


class Database(Protocol):
    """What the stores use; `SQLiteDatabase` and `PostgresDatabase` both provide it."""

    dialect: Dialect
    target: Target

    def ensure(self, component: Component) -> None: ...

    def query(self, sql: str, params: Any = ()) -> list[Row]: ...

    def execute(self, sql: str, params: Any = ()) -> int: ...

    def executemany(self, sql: str, rows: Any) -> None: ...

    def insert_rows(self, table: Table, rows: Any) -> None: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


def open_database(
    target: Target,
    *,
    key: str,
    what: str = "the database",
    max_connections: int = 8,
    connect_timeout_s: float = 10.0,
    bulk: bool = False,
) -> Database:
    """Open (and connect to) the database `target` names. `key` and `what` name it in errors.
    `max_connections`, `connect_timeout_s`: PostgreSQL; `bulk`: SQLite tuned for large batches."""
    if target.kind == "postgresql":
        from spendmeter.storage.postgres import PostgresDatabase

        return PostgresDatabase(
            target, key=key, what=what, max_size=max_connections, connect_timeout_s=connect_timeout_s
        )
    # The ledger's directories must exist (a typo must not write the audit trail somewhere new).
    return SQLiteDatabase(target, key=key, bulk=bulk, create_dirs=key != "ledger")


__all__ = [
    "BatchWriter",
    "Column",
    "Component",
    "Database",
    "Dialect",
    "Row",
    "SQLiteDatabase",
    "Table",
    "Target",
    "open_database",
    "parse_target",
    "redact_dsn",
    "render",
]
