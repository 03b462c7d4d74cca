"""The ledger: one SQL row per finished call, for audits and ad-hoc analytics.

Backends: a SQLite file (`sqlite:///relative.db`, `sqlite:////absolute.db`, or a plain path) or PostgreSQL
(`postgresql://user@host:5432/db`, or `env:VAR` naming such a DSN). Costs are exact decimals: PostgreSQL
NUMERIC, SQLite TEXT in plain notation (`0.00000015`, never a float).

The caller's thread never does I/O here: `on_call()` builds a tuple and puts it on a bounded queue
(a few microseconds). One background thread writes rows in batches, one transaction per batch, when
`batch_size` rows are waiting or `flush_interval_s` after the oldest waiting row, on `flush()` and on
`close()`. When the queue is full (the database is down or too slow), new rows are dropped, not waited
for: `dropped` counts them and each drop is reported as internal error kind `ledger.dropped`. A batch
that fails twice (once more on a fresh connection) is lost and counted in `failed_rows`
(kind `ledger.write_failed`). The ledger is an audit trail, not the source of budget truth.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from spendmeter.call import Call, Cost, Unpriced
from spendmeter.errors import ConfigError

log = logging.getLogger("spendmeter")

SCHEMA_VERSION = 1
TABLE = "spendmeter_ledger"
VERSION_TABLE = "spendmeter_schema_version"  # one row per spendmeter component that owns tables

# (column, SQLite type, PostgreSQL type), in the order of the row tuple `_row()` builds.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("started_at", "TEXT NOT NULL", "TIMESTAMPTZ NOT NULL"),  # SQLite: ISO-8601 UTC, sorts as text
    ("ended_at", "TEXT", "TIMESTAMPTZ"),
    ("duration_s", "REAL", "DOUBLE PRECISION"),
    ("service", "TEXT", "TEXT"),
    ("provider", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("operation", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("request_model", "TEXT", "TEXT"),
    ("response_model", "TEXT", "TEXT"),
    ("model", "TEXT NOT NULL", "TEXT NOT NULL"),  # what the call is accounted to (response, else request)
    ("deployment", "TEXT", "TEXT"),
    ("server_address", "TEXT", "TEXT"),
    ("user_id", "TEXT", "TEXT"),  # not "user": a reserved word in PostgreSQL
    ("feature", "TEXT", "TEXT"),
    ("agent", "TEXT", "TEXT"),
    ("conversation", "TEXT", "TEXT"),
    ("stream", "INTEGER NOT NULL", "BOOLEAN NOT NULL"),
    ("batch", "INTEGER NOT NULL", "BOOLEAN NOT NULL"),
    ("status", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("error_type", "TEXT", "TEXT"),
    ("end_reason", "TEXT", "TEXT"),
    ("attempts", "INTEGER NOT NULL", "INTEGER NOT NULL"),
    ("request_service_tier", "TEXT", "TEXT"),
    ("service_tier", "TEXT", "TEXT"),
    ("response_id", "TEXT", "TEXT"),
    ("input_tokens", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    ("cache_read_tokens", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    ("cache_write_5m_tokens", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    ("cache_write_1h_tokens", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    ("output_tokens", "INTEGER NOT NULL", "BIGINT NOT NULL"),
    ("reasoning_tokens", "INTEGER NOT NULL", "BIGINT NOT NULL"),  # a subset of output_tokens
    ("usage_source", "TEXT NOT NULL", "TEXT NOT NULL"),
    ("cost_input_usd", "TEXT", "NUMERIC"),  # NULL when the call was not priced
    ("cost_cache_read_usd", "TEXT", "NUMERIC"),
    ("cost_cache_write_usd", "TEXT", "NUMERIC"),
    ("cost_output_usd", "TEXT", "NUMERIC"),
    ("cost_total_usd", "TEXT", "NUMERIC"),
    ("currency", "TEXT", "TEXT"),
    ("cost_source", "TEXT", "TEXT"),
    ("price_entry", "TEXT", "TEXT"),
    ("unpriced_reason", "TEXT", "TEXT"),  # set when pricing found no price; NULL costs then
)
COLUMN_NAMES = tuple(name for name, _s, _p in COLUMNS)
_INDEXES = ("started_at", "user_id, started_at", "feature, started_at")
_NO_COST = (None,) * 9

_STOP = object()


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class LedgerSink:
    """Sink: one ledger row per finished call, written in batches by a background thread."""

    def __init__(
        self,
        target: str | os.PathLike[str],
        *,
        service_name: str | None = None,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.backend = open_backend(str(target))  # connects and creates the schema: fails fast at init()
        self.service_name = service_name
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.on_error = on_error
        self.dropped = 0  # rows refused because the queue was full (or the ledger closed)
        self.written = 0
        self.failed_rows = 0  # rows lost with a batch the database refused twice
        self._closed = False
        self._start_lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None
        self._start()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (s := ref()) is not None and s._after_fork())

    # -- the hot path -------------------------------------------------------------------------------
    def on_call(self, call: Call) -> None:
        if self._closed:
            self._drop()
            return
        row = self._row(call)
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self._drop()
            return
        if self._thread is None:  # after a fork: the writer thread did not come along
            self._start()

    def _row(self, call: Call) -> tuple[Any, ...]:
        who, usage, cost = call.attribution, call.usage, call.cost
        if isinstance(cost, Cost):
            money: tuple[Any, ...] = (
                cost.input, cost.cache_read, cost.cache_write, cost.output, cost.total,
                cost.currency, cost.source, cost.price_entry, None,
            )  # fmt: skip
        elif isinstance(cost, Unpriced):
            money = (None,) * 8 + (cost.reason,)
        else:
            money = _NO_COST
        return (
            call.started_at, call.ended_at, call.duration_s, self.service_name,
            call.provider, call.operation, call.request_model, call.response_model, call.model,
            call.deployment, call.server_address,
            who.user, who.feature, who.agent, who.conversation,
            call.stream, call.batch, call.status, call.error_type, call.end_reason, call.attempts,
            call.request_service_tier, call.service_tier, call.response_id,
            usage.input, usage.cache_read, usage.cache_write_5m, usage.cache_write_1h, usage.output,
            usage.reasoning, usage.source, *money,
        )  # fmt: skip

    def _drop(self) -> None:
        self.dropped += 1  # a lost increment under a race only undercounts drops; no lock on this path
        if self.dropped == 1:
            log.warning("spendmeter ledger: queue full (%d rows); dropping rows until it drains", self.max_queue)
        self._report("ledger.dropped")

    def _report(self, kind: str) -> None:
        if self.on_error is not None:
            try:
                self.on_error(kind)
            except Exception:  # pragma: no cover - reporting must never raise
                pass

    # -- control ------------------------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Write every row queued before this call. True when done within `timeout`."""
        if self._thread is None or not self._thread.is_alive():
            return self._queue.empty()
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, stop the writer, close the connection. Rows arriving later are dropped."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                log.warning("spendmeter ledger: could not stop the writer within %.0fs", timeout)
            thread.join(timeout)
        self.backend.close()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._closed:
                return
            thread = threading.Thread(target=self._run, name="spendmeter-ledger", daemon=True)
            self._thread = thread
            thread.start()

    def _after_fork(self) -> None:
        # Rows queued in the parent are the parent's to write; the child starts empty, on its own
        # connection, and starts its writer on its first row.
        self._queue = queue.Queue(self.max_queue)
        self._start_lock = threading.Lock()
        self._thread = None
        self.backend.forget()

    # -- the writer thread --------------------------------------------------------------------------
    def _run(self) -> None:
        q = self._queue
        batch: list[tuple[Any, ...]] = []
        deadline = 0.0
        while True:
            try:
                item = q.get(timeout=max(0.0, deadline - time.monotonic()) if batch else None)
            except queue.Empty:
                item = None  # the oldest waiting row is due
            if type(item) is tuple:
                if not batch:
                    deadline = time.monotonic() + self.flush_interval_s
                batch.append(item)
                if len(batch) < self.batch_size:
                    continue
            if batch:
                self._write(batch)
                batch = []
            if isinstance(item, _Flush):
                item.done.set()
            elif item is _STOP:
                return

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        for attempt in (1, 2):
            try:
                self.backend.write(rows)
                self.written += len(rows)
                return
            except Exception:
                if attempt == 1:
                    log.warning("spendmeter ledger: writing %d rows failed; retrying on a new connection",
                                len(rows), exc_info=True)  # fmt: skip
                    try:
                        self.backend.reconnect()
                    except Exception:
                        pass
        self.failed_rows += len(rows)
        log.warning("spendmeter ledger: %d rows lost (%d so far)", len(rows), self.failed_rows)
        self._report("ledger.write_failed")


# ----------------------------------------------------------------------------------------- backends


def open_backend(target: str) -> SQLiteLedger | PostgresLedger:
    """`postgresql://...` / `env:VAR` → PostgreSQL; `sqlite:///path` or a plain path → SQLite file."""
    if target.startswith(("postgresql://", "postgres://", "env:")):
        return PostgresLedger(target)
    if target.startswith("sqlite:///"):
        path = target[len("sqlite:///") :]
        if not path or path.endswith("/"):
            raise ConfigError(f"expected sqlite:///relative.db or sqlite:////absolute.db, got {target!r}", key="ledger")
        return SQLiteLedger(path)
    if "://" in target or not target.strip():
        raise ConfigError(
            f"expected a file path, sqlite:///path.db or postgresql://user@host:5432/db, got {target!r}", key="ledger"
        )
    return SQLiteLedger(target)


def _check_version(found: int | None, where: str) -> None:
    if found is not None and found > SCHEMA_VERSION:
        raise ConfigError(
            f"the ledger in {where} has schema version {found}, newer than this spendmeter understands "
            f"({SCHEMA_VERSION}); upgrade spendmeter or point the ledger elsewhere",
            key="ledger",
        )


def _plain(value: Any) -> Any:
    """SQLite has no decimal or timestamp type: exact text for both."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


class SQLiteLedger:
    def __init__(self, path: str) -> None:
        self.path = path
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        cols = ", ".join(f"{name} {sqlite}" for name, sqlite, _pg in COLUMNS)
        self._schema = [
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY AUTOINCREMENT, {cols})",
            *(f"CREATE INDEX IF NOT EXISTS {TABLE}_by_{i.split(',')[0]} ON {TABLE} ({i})" for i in _INDEXES),
            f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
        ]
        self._insert = f"INSERT INTO {TABLE} ({', '.join(COLUMN_NAMES)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        self._conn: sqlite3.Connection | None = None
        try:
            self._connect()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the ledger file {path}: {exc}", key="ledger") from exc

    def _connect(self) -> sqlite3.Connection:
        # The writer thread is the only user after init(); check_same_thread=False lets init() create it.
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")  # readers (analytics) never block the writer
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql in self._schema:
                conn.execute(sql)
            row = conn.execute(f"SELECT version FROM {VERSION_TABLE} WHERE component = 'ledger'").fetchone()
            _check_version(row[0] if row else None, self.path)
            if row is None:
                conn.execute(
                    f"INSERT INTO {VERSION_TABLE} (component, version) VALUES ('ledger', ?)", (SCHEMA_VERSION,)
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            conn.close()
            raise
        self._conn = conn
        return conn

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        conn = self._conn or self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(self._insert, [tuple(map(_plain, row)) for row in rows])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def reconnect(self) -> None:
        self.close()
        self._connect()

    def forget(self) -> None:
        self._conn = None  # the parent's connection; the child opens its own on first write

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class PostgresLedger:
    def __init__(self, target: str) -> None:
        from spendmeter.postgres import import_psycopg, resolve_dsn

        self._psycopg = import_psycopg("ledger: postgresql://")
        self.dsn = resolve_dsn(target, key="ledger")
        cols = ", ".join(f"{name} {pg}" for name, _sqlite, pg in COLUMNS)
        self._schema = [
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGSERIAL PRIMARY KEY, {cols})",
            *(f"CREATE INDEX IF NOT EXISTS {TABLE}_by_{i.split(',')[0]} ON {TABLE} ({i})" for i in _INDEXES),
            f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
        ]
        self._insert = f"INSERT INTO {TABLE} ({', '.join(COLUMN_NAMES)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
        self._conn: Any = None
        self._connect()

    def _connect(self) -> Any:
        try:
            conn = self._psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        except self._psycopg.OperationalError as exc:
            from spendmeter.postgres import redact_dsn

            raise ConfigError(
                f"cannot connect to the ledger database {redact_dsn(self.dsn)}: {exc}", key="ledger"
            ) from exc
        try:
            with conn.transaction():
                # Serialise schema creation between processes starting together.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x4C4544474552,))  # "LEDGER"
                for sql in self._schema:
                    conn.execute(sql)
                row = conn.execute(f"SELECT version FROM {VERSION_TABLE} WHERE component = 'ledger'").fetchone()
                _check_version(row[0] if row else None, "PostgreSQL")
                if row is None:
                    conn.execute(
                        f"INSERT INTO {VERSION_TABLE} (component, version) VALUES ('ledger', %s)", (SCHEMA_VERSION,)
                    )
        except self._psycopg.Error as exc:
            conn.close()
            raise ConfigError(f"cannot create the ledger tables in PostgreSQL: {exc}", key="ledger") from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        conn = self._conn if self._conn is not None and not self._conn.closed else self._connect()
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(self._insert, rows)  # psycopg pipelines these: one round trip per batch

    def reconnect(self) -> None:
        self.close()
        self._connect()

    def forget(self) -> None:
        self._conn = None  # psycopg never closes a connection from a process that did not open it

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # pragma: no cover - the socket is already gone
                pass
