"""Reading the ledger: one `LedgerSource` per ledger target, for the cost API, `spendmeter report` and
`spendmeter reconcile`. It never writes and never creates the table.

Exact money on both backends: PostgreSQL sums NUMERIC exactly (`SUM()` returns a `Decimal`). SQLite stores
costs as TEXT (see `storage.schema`) and its own `SUM()` would turn them into floats, so every query runs
on a connection where `dsum()` is registered: an aggregate that adds the texts as `Decimal`s and returns the
exact sum as text. The same SQL text serves both dialects; only `SUM`/`dsum` and the day expression differ
(`sql()` renders them).

SQLite: a short-lived connection per query, `query_only` on. The callers run on short-lived threads (the
built-in server answers each request on a new one), and a per-thread connection would outlive each of them.
PostgreSQL: a small pool of its own (2 connections), so a slow report never waits behind the ledger writer.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any

from spendmeter.storage import Database, Target, open_database, parse_target, render
from spendmeter.storage.schema import from_micros, micros

TABLE = "spendmeter_ledger"
ENABLE_HINT = (
    "enable the ledger with spendmeter.init(ledger='sqlite:///spendmeter-ledger.db') or "
    "SPENDMETER_LEDGER=sqlite:///spendmeter-ledger.db (or a postgresql:// DSN)"
)
INTEGER_TIMESTAMPS = 4  # the ledger schema from which SQLite stores timestamps as integer microseconds
# The UTC day of `started_at` (integer microseconds) on SQLite: the seconds floored (SQLite's `/` truncates
# toward zero), then date(). A float division would put a day's last half millisecond in the next day: SQLite's
# date functions keep milliseconds, rounded.
_SQLITE_DAY = "date((started_at - (started_at % 1000000 + 1000000) % 1000000) / 1000000, 'unixepoch')"
_WIDE = Context(prec=60)  # sums of ~1e9 rows at 1e-12 USD resolution stay exact


class LedgerUnavailable(Exception):
    """There is no ledger to read (none configured, no such file, no table yet): `str()` says what to do."""


class _DecimalSum:
    """SQLite aggregate `dsum(text)`: the exact sum of decimal texts, as plain-notation text (NULL if none)."""

    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: Any) -> None:
        if value is None:
            return
        d = Decimal(value) if isinstance(value, str) else Decimal(str(value))
        self.total = d if self.total is None else _WIDE.add(self.total, d)

    def finalize(self) -> str | None:
        return None if self.total is None else format(self.total, "f")


def to_decimal(value: Any) -> Decimal:
    """A cost cell or sum (Decimal from PostgreSQL, text from SQLite, NULL) as a Decimal; NULL is 0."""
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))


def to_datetime(value: Any) -> datetime | None:
    """A timestamp cell (datetime from PostgreSQL, integer microseconds from SQLite) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, int):
        return from_micros(value)
    if isinstance(value, str):  # not written since schema 4; kept for a hand-made row
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _iso_text(conn: sqlite3.Connection) -> bool:
    """Whether this SQLite ledger stores timestamps as ISO-8601 text (schema 3 or older, not yet rebuilt)."""
    try:
        row = conn.execute("SELECT version FROM spendmeter_schema_version WHERE component = 'ledger'").fetchone()
    except sqlite3.OperationalError:  # no version table: no ledger either (the query says so)
        return False
    return row is not None and int(row[0]) < INTEGER_TIMESTAMPS


def _utc(when: datetime) -> datetime:
    """A timestamp parameter in UTC; a naive one is UTC already."""
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def _sqlite_stamp(when: datetime, iso_text: bool) -> int | str:
    """A timestamp parameter as this SQLite ledger stores them: integer microseconds, or ISO text (schema 3)."""
    return _utc(when).isoformat(timespec="microseconds") if iso_text else micros(_utc(when))


class LedgerSource:
    """Read-only access to one ledger. `LedgerSource.open(target)` connects (a bad target: `ConfigError`)."""

    def __init__(self, target: Target, db: Database | None = None) -> None:
        self.target = target
        self.dialect = "sqlite" if target.kind == "sqlite" else "postgresql"
        self._db = db

    @classmethod
    def open(cls, target: str | os.PathLike[str] | Target, *, key: str = "ledger") -> LedgerSource:
        if not isinstance(target, Target):
            target = parse_target(target, key=key)
        if target.kind == "sqlite":
            if not target.path or not os.path.isfile(target.path):
                raise LedgerUnavailable(f"no ledger file at {target.path}: nothing has been recorded there yet; "
                                        f"{ENABLE_HINT}")
            return cls(target)
        db = open_database(target, key=key, what="the ledger database", max_connections=2)
        return cls(target, db)

    def __repr__(self) -> str:
        return f"LedgerSource({self.target.redacted!r})"

    # -- SQL ----------------------------------------------------------------------------------------
    def sql(self, text: str, *, iso_text: bool = False) -> str:
        """`text` written with `?` placeholders, `$DSUM(` for exact money sums and `$DAY` for the UTC day
        (YYYY-MM-DD) of `started_at`, for this dialect. `iso_text`: a SQLite ledger of schema 3 or older,
        whose timestamps are ISO-8601 text."""
        if self.dialect == "sqlite":
            day = "substr(started_at, 1, 10)" if iso_text else _SQLITE_DAY
            text = text.replace("$DSUM(", "dsum(").replace("$DAY", day)
        else:
            day = "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            text = text.replace("$DSUM(", "SUM(").replace("$DAY", day)
        return render(text, self.dialect)  # type: ignore[arg-type]

    def stamp(self, when: datetime) -> datetime:
        """A timestamp parameter compared with `started_at` (a naive one is UTC). On SQLite, `query()` binds it
        as the ledger stores it: integer microseconds, or ISO text in a ledger older than schema 4."""
        return _utc(when)

    def query(self, text: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run `text` (see `sql()`); a missing table becomes `LedgerUnavailable`."""
        if self._db is not None:
            try:
                return self._db.query(self.sql(text), params)
            except Exception as exc:
                if type(exc).__name__ == "UndefinedTable":  # psycopg.errors.UndefinedTable; psycopg is optional
                    raise LedgerUnavailable(self._no_table()) from None
                raise
        assert self.target.path is not None
        conn = sqlite3.connect(self.target.path, timeout=30)
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.create_aggregate("dsum", 1, _DecimalSum)  # type: ignore[arg-type]
            # Asked on every query: a ledger still at schema 3 is rebuilt when a writer opens it.
            iso = _iso_text(conn)
            bound = [_sqlite_stamp(p, iso) if isinstance(p, datetime) else p for p in params]
            return conn.execute(self.sql(text, iso_text=iso), bound).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                raise LedgerUnavailable(self._no_table()) from None
            raise
        finally:
            conn.close()

    def _no_table(self) -> str:
        return f"{self.target.redacted} has no {TABLE} table yet: no call has been recorded there; {ENABLE_HINT}"

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


def from_runtime(runtime: Any) -> Target:
    """The ledger target of a running spendmeter (`current().runtime`), or `LedgerUnavailable`."""
    sink = getattr(runtime, "ledger", None) if runtime is not None else None
    if sink is None:
        raise LedgerUnavailable(f"this process records no ledger, and the cost API reads it: {ENABLE_HINT}")
    target: Target = sink.target
    return target


__all__ = ["ENABLE_HINT", "LedgerSource", "LedgerUnavailable", "from_runtime", "to_datetime",
           "to_decimal"]
