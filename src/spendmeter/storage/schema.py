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
| timestamp | INTEGER, microseconds since 1970-01-01 UTC | TIMESTAMPTZ |

Each component that owns tables (`ledger`, `spend`) has a row in `spendmeter_schema_version`. Opening a database
whose row is newer than this spendmeter understands is refused with a `ConfigError`: an old writer must not
write rows a newer schema reads differently. An older row is migrated in the same transaction: each
`Component.migrations` step above the recorded version runs (`AddColumn`: rows written before read NULL
there; `IntegerTimestamps`: a SQLite table rebuilt with the ISO text of older versions as integers), then the
row records the new version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

from spendmeter.errors import ConfigError

log = logging.getLogger("spendmeter")

Dialect = Literal["sqlite", "postgresql"]
Row = tuple[Any, ...]

_TYPES: dict[str, tuple[str, str]] = {  # portable type -> (SQLite, PostgreSQL)
    "text": ("TEXT", "TEXT"),
    "int": ("INTEGER", "INTEGER"),
    "bigint": ("INTEGER", "BIGINT"),
    "bool": ("INTEGER", "BOOLEAN"),
    "float": ("REAL", "DOUBLE PRECISION"),
    "decimal": ("TEXT", "NUMERIC"),
    "timestamp": ("INTEGER", "TIMESTAMPTZ"),  # SQLite: schema versions before the ledger's 4 wrote ISO-8601 text
}
_SURROGATE_ID = ("id INTEGER PRIMARY KEY AUTOINCREMENT", "id BIGSERIAL PRIMARY KEY")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def micros(value: datetime) -> int:
    """An aware `datetime` as SQLite stores it: whole microseconds since 1970-01-01 UTC, exactly."""
    return (value - EPOCH) // MICROSECOND


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


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

    def adapter(self, dialect: Dialect) -> Callable[[Row], Sequence[Any]] | None:
        """Row -> parameters the driver stores exactly: SQLite has no decimal or timestamp type, so decimals
        become text in plain notation (never `1E-9`) and timestamps integer microseconds since 1970-01-01 UTC
        (`micros()`: exact, and 8 bytes instead of 32 of ISO text, in the row and in every index that holds one). None
        when rows go as they are (PostgreSQL, or no such columns)."""
        if dialect != "sqlite":
            return None
        decimals = tuple(i for i, c in enumerate(self.columns) if c.type == "decimal")
        stamps = tuple(i for i, c in enumerate(self.columns) if c.type == "timestamp")
        if not decimals and not stamps:
            return None

        # The writer thread runs this for every row: two plain loops, no call per value.
        def adapt(row: Row) -> list[Any]:
            out = list(row)
            for i in decimals:
                value = out[i]
                if isinstance(value, Decimal):
                    out[i] = format(value, "f")
            for i in stamps:
                value = out[i]
                if isinstance(value, datetime):
                    out[i] = micros(value.astimezone(UTC))  # a naive datetime is local time, as astimezone says
            return out

        return adapt


@dataclass(frozen=True, slots=True)
class Component:
    """A part of spendmeter that owns tables, and the schema version its code reads and writes."""

    name: str  # its row in spendmeter_schema_version
    version: int
    tables: tuple[Table, ...]
    lock_id: int  # PostgreSQL advisory lock: serialises creation between processes starting together
    config_key: str  # the setting that names the database, for error messages
    # (version, steps): what brings tables of version - 1 to `version`, in ascending order
    migrations: tuple[tuple[int, tuple[Step, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class AddColumn:
    """A migration step: a nullable column added to an existing table (older rows read NULL in it)."""

    table: str
    column: Column

    def statements(self, dialect: Dialect) -> list[str]:
        return [f"ALTER TABLE {self.table} ADD COLUMN {self.column.render(dialect)}"]


def _iso_to_micros(column: str) -> str:
    """SQL: the ISO-8601 text older versions wrote (`2026-03-01T12:00:00.123456+00:00`) as `micros()`; any
    other value (an integer already) as it is. strftime('%s') truncates toward zero, so the whole seconds are
    read without the fraction and the fraction is added on its own."""
    c = column
    dot = f"substr({c}, 20, 1) = '.'"
    zone = f"CASE WHEN {dot} THEN substr({c}, 27) ELSE substr({c}, 20) END"  # '+00:00' (or '' / 'Z')
    seconds = f"CAST(strftime('%s', substr({c}, 1, 19) || {zone}) AS INTEGER)"
    fraction = f"CASE WHEN {dot} THEN CAST(substr({c}, 21, 6) AS INTEGER) ELSE 0 END"
    return f"CASE WHEN typeof({c}) = 'text' THEN {seconds} * 1000000 + {fraction} ELSE {c} END"


@dataclass(frozen=True, slots=True)
class IntegerTimestamps:
    """A migration step, SQLite only: `table` rebuilt with its timestamp columns declared INTEGER and their ISO
    text converted to `micros()` (SQLite cannot change a column's type in place, and a TEXT column would store
    integers as text). Ids, every other value and the indexes are kept. Nothing to do on PostgreSQL, whose
    columns are TIMESTAMPTZ."""

    table: Table  # as it is after the step

    def statements(self, dialect: Dialect) -> list[str]:
        if dialect != "sqlite":
            return []
        t, new = self.table, f"{self.table.name}_rebuilt"
        ids = () if t.primary_key else ("id",)  # the surrogate key, kept
        columns = (*ids, *t.column_names)
        values = (*ids, *(_iso_to_micros(c.name) if c.type == "timestamp" else c.name for c in t.columns))
        create, *indexes = t.create(dialect)
        return [
            create.replace(f"CREATE TABLE IF NOT EXISTS {t.name} (", f"CREATE TABLE {new} (", 1),
            f"INSERT INTO {new} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {t.name}",
            f"DROP TABLE {t.name}",  # its indexes with it
            f"ALTER TABLE {new} RENAME TO {t.name}",
            *indexes,
        ]

    def strays(self) -> str:
        """SQLite: the rows with ids in (?, ?] whose timestamps are still ISO text, converted. An older
        spendmeter that opened the file before its rebuild (a worker not yet restarted during an upgrade)
        still writes its rows that way, into the INTEGER columns."""
        stamps = [c.name for c in self.table.columns if c.type == "timestamp"]
        sets = ", ".join(f"{name} = {_iso_to_micros(name)}" for name in stamps)
        texts = " OR ".join(f"typeof({name}) = 'text'" for name in stamps)
        return f"UPDATE {self.table.name} SET {sets} WHERE id > ? AND id <= ? AND ({texts})"


Step = AddColumn | IntegerTimestamps


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
    elif int(found[0]) < component.version:
        # Serialised like creation (BEGIN IMMEDIATE on SQLite, the advisory lock on PostgreSQL): one process
        # migrates, the others then find the new version. A rebuild takes a while on a big table: say so.
        log.warning("spendmeter: upgrading the %s tables in %s from schema %s to %s", component.name, where,
                    found[0], component.version)  # fmt: skip
        started = time.monotonic()
        for version, steps in component.migrations:
            if int(found[0]) < version <= component.version:
                for step in steps:
                    for sql in step.statements(dialect):
                        conn.execute(sql)
        conn.execute(
            render(f"UPDATE {VERSION_TABLE.name} SET version = ? WHERE component = ?", dialect),
            (component.version, component.name),
        )
        log.info("spendmeter: %s tables upgraded in %.1f s", component.name, time.monotonic() - started)
    elif int(found[0]) > component.version:
        raise ConfigError(
            f"the {component.name} tables in {where} have schema version {found[0]}, newer than this spendmeter "
            f"understands ({component.version}); upgrade spendmeter or point {component.config_key} elsewhere",
            key=component.config_key,
        )
