"""Versioned tables, written once and rendered for SQLite and PostgreSQL.

A table is a tuple of `Column(name, type, not_null)` with portable types; `create()` and `insert()` render the
dialect's SQL from it, so there is one definition per table, not one per dialect. Statements shared by both
dialects are written with `?` placeholders and rendered by `render()`.

| type | SQLite | PostgreSQL |
|---|---|---|
| text | TEXT | TEXT |
| int | INTEGER | INTEGER |
| bigint | INTEGER (64-bit) | BIGINT |
| bool | INTEGER 0/1 | BOOLEAN |
| float | REAL | DOUBLE PRECISION |
| decimal | TEXT, plain notation (`0.00000015`, exact) | NUMERIC |
| timestamp | TEXT, ISO-8601 UTC (sorts as text) | TIMESTAMPTZ |

Each component that owns tables (`ledger`, `spend`) has a row in `spendmeter_schema_version`. Opening a database
whose row is newer than this spendmeter understands is refused with a `ConfigError`: an old writer must not
write rows a newer schema reads differently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

from spendmeter.errors import ConfigError

Dialect = Literal["sqlite", "postgresql"]
Row = tuple[Any, ...]

_TYPES: dict[str, tuple[str, str]] = {  # portable type -> (SQLite, PostgreSQL)
    "text": ("TEXT", "TEXT"),
    "int": ("INTEGER", "INTEGER"),
    "bigint": ("INTEGER", "BIGINT"),
    "bool": ("INTEGER", "BOOLEAN"),
    "float": ("REAL", "DOUBLE PRECISION"),
    "decimal": ("TEXT", "NUMERIC"),
    "timestamp": ("TEXT", "TIMESTAMPTZ"),
}
_SURROGATE_ID = ("id INTEGER PRIMARY KEY AUTOINCREMENT", "id BIGSERIAL PRIMARY KEY")


def _pick(pair: tuple[str, str], dialect: Dialect) -> str:
    return pair[0] if dialect == "sqlite" else pair[1]


def render(sql: str, dialect: Dialect) -> str:
    """A statement written with `?` placeholders, for `dialect` (psycopg uses `%s`)."""
    return sql if dialect == "sqlite" else sql.replace("?", "%s")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # a key of _TYPES
    not_null: bool = False

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"unknown column type {self.type!r}; expected one of {', '.join(_TYPES)}")

    def render(self, dialect: Dialect) -> str:
        return f"{self.name} {_pick(_TYPES[self.type], dialect)}{' NOT NULL' if self.not_null else ''}"


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()  # empty: a surrogate `id` (AUTOINCREMENT / BIGSERIAL) comes first
    indexes: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (index name, columns)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def create(self, dialect: Dialect) -> list[str]:
        parts = [] if self.primary_key else [_pick(_SURROGATE_ID, dialect)]
        parts += [c.render(dialect) for c in self.columns]
        if self.primary_key:
            parts.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        return [
            f"CREATE TABLE IF NOT EXISTS {self.name} ({', '.join(parts)})",
            *(f"CREATE INDEX IF NOT EXISTS {name} ON {self.name} ({', '.join(cols)})" for name, cols in self.indexes),
        ]

    def insert(self, dialect: Dialect) -> str:
        """INSERT of every column, in order: the row tuples the writers build."""
        marks = ", ".join("?" * len(self.columns))
        return render(f"INSERT INTO {self.name} ({', '.join(self.column_names)}) VALUES ({marks})", dialect)

    def adapter(self, dialect: Dialect) -> Callable[[Row], Row] | None:
        """Row -> row the driver can store exactly: SQLite has no decimal or timestamp type, so those become
        text. None when rows go as they are (PostgreSQL; or a table without such columns)."""
        if dialect != "sqlite":
            return None
        convert = {i: _SQLITE_TEXT[c.type] for i, c in enumerate(self.columns) if c.type in _SQLITE_TEXT}
        if not convert:
            return None
        items = tuple(convert.items())

        def adapt(row: Row) -> Row:
            out = list(row)
            for i, fn in items:
                value = out[i]
                if value is not None:
                    out[i] = fn(value)
            return tuple(out)

        return adapt


def _decimal_text(value: Any) -> Any:
    return format(value, "f") if isinstance(value, Decimal) else value  # never 1E-9


def _timestamp_text(value: Any) -> Any:
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is not UTC:  # the recorder's are UTC already: skip the conversion on the hot path
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


_SQLITE_TEXT: dict[str, Callable[[Any], Any]] = {"decimal": _decimal_text, "timestamp": _timestamp_text}


@dataclass(frozen=True, slots=True)
class Component:
    """A part of spendmeter that owns tables, and the schema version its code reads and writes."""

    name: str  # its row in spendmeter_schema_version
    version: int
    tables: tuple[Table, ...]
    lock_id: int  # PostgreSQL advisory lock: serialises creation between processes starting together
    config_key: str  # the setting that names the database, for error messages


VERSION_TABLE = Table(
    "spendmeter_schema_version",
    (Column("component", "text", not_null=True), Column("version", "int", not_null=True)),
    primary_key=("component",),
)


class Executes(Protocol):
    """What `ensure()` needs of a connection: sqlite3 and psycopg connections both have it."""

    def execute(self, sql: str, params: Any = ...) -> Any: ...


def ensure(conn: Executes, dialect: Dialect, component: Component, *, where: str) -> None:
    """Create the component's tables if missing, record its version, refuse a newer one. Run inside one
    transaction (the caller's), so two processes starting together cannot half-create a schema."""
    if dialect == "postgresql":
        # Concurrent CREATE TABLE IF NOT EXISTS can still fail on the catalog's unique index: take turns.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (component.lock_id,))
    for table in (VERSION_TABLE, *component.tables):
        for sql in table.create(dialect):
            conn.execute(sql)
    found = conn.execute(
        render(f"SELECT version FROM {VERSION_TABLE.name} WHERE component = ?", dialect), (component.name,)
    ).fetchone()
    if found is None:
        conn.execute(
            render(f"INSERT INTO {VERSION_TABLE.name} (component, version) VALUES (?, ?)", dialect),
            (component.name, component.version),
        )
    elif int(found[0]) > component.version:
        raise ConfigError(
            f"the {component.name} tables in {where} have schema version {found[0]}, newer than this spendmeter "
            f"understands ({component.version}); upgrade spendmeter or point {component.config_key} elsewhere",
            key=component.config_key,
        )
