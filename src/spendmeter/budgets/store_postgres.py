"""Budget spend in PostgreSQL: one store shared by every worker on every host.

The same table and the same atomic upsert as the SQLite store (`spent = spent + excluded.spent`, done by the
server, so concurrent writers on other hosts cannot lose an update), with BIGINT nano-dollars.

Connections come from a small pool (default at most 8), each in autocommit mode: a read is one statement,
and `add()` is one statement too (`INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE`), so a call's
spend lands in all its budgets at once without an explicit transaction. After a fork the child opens its
own connections: a connection must never cross a fork.

The DSN is written in the budgets file (`store: postgresql://user@host:5432/db`) or read from an
environment variable the file names (`store: env:SPENDMETER_SPEND_DSN`), so passwords stay out of files.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from spendmeter.budgets.store import TABLE, SpendKey
from spendmeter.errors import ConfigError
from spendmeter.postgres import import_psycopg, redact_dsn, resolve_dsn

log = logging.getLogger("spendmeter")


# Any fixed 64-bit number: serialises schema creation across processes starting at the same moment
# (concurrent CREATE TABLE IF NOT EXISTS can still fail on the catalog's unique index).
_SCHEMA_LOCK_ID = 0x5350454E44  # "SPEND"
_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        budget TEXT NOT NULL,
        period_start TEXT NOT NULL,
        scope_key TEXT NOT NULL,
        spent_nano_usd BIGINT NOT NULL,
        PRIMARY KEY (budget, period_start, scope_key)
    )""",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_by_spend ON {TABLE} (budget, period_start, spent_nano_usd)",
)
# One statement for all of a call's budgets: atomic without BEGIN/COMMIT round trips.
_ADD = (
    f"INSERT INTO {TABLE} AS t (budget, period_start, scope_key, spent_nano_usd) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[]) "
    "ON CONFLICT (budget, period_start, scope_key) "
    "DO UPDATE SET spent_nano_usd = t.spent_nano_usd + excluded.spent_nano_usd"
)
_GET = f"SELECT spent_nano_usd FROM {TABLE} WHERE budget = %s AND period_start = %s AND scope_key = %s"
_TOP = (
    f"SELECT scope_key, spent_nano_usd FROM {TABLE} WHERE budget = %s AND period_start = %s "
    "AND spent_nano_usd >= %s ORDER BY spent_nano_usd DESC, scope_key LIMIT %s"
)
_COUNT = f"SELECT COUNT(*) FROM {TABLE} WHERE budget = %s AND period_start = %s AND spent_nano_usd >= %s"
_PRUNE = f"DELETE FROM {TABLE} WHERE budget = %s AND period_start < %s"


class PostgresStore:
    """Spend store on PostgreSQL. Thread-safe; fork-safe; connects (and creates the table) at construction,
    so a wrong DSN fails at `init()`, not at the first call."""

    def __init__(self, dsn: str, *, max_connections: int = 8, connect_timeout_s: float = 10.0) -> None:
        self._psycopg = import_psycopg("store: postgresql://")
        self.dsn = resolve_dsn(dsn)
        self.max_connections = max_connections
        self.connect_timeout_s = connect_timeout_s
        self._cond = threading.Condition()
        self._idle: list[Any] = []
        self._open = 0
        self._pid = os.getpid()
        with self._connection() as conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
                for sql in _SCHEMA:
                    conn.execute(sql)

    # -- the pool -----------------------------------------------------------------------------------
    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self.dsn, autocommit=True, connect_timeout=max(1, int(self.connect_timeout_s)))
        except self._psycopg.OperationalError as exc:
            raise ConfigError(
                f"cannot connect to the spend store {redact_dsn(self.dsn)}: {exc}".strip(), key="store"
            ) from exc

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        with self._cond:
            if self._pid != os.getpid():
                # Forked: the parent's sockets are not ours. Forget them without closing (psycopg does not
                # close a connection from a process other than the one that opened it).
                self._idle, self._open, self._pid = [], 0, os.getpid()
            while not self._idle and self._open >= self.max_connections:
                if not self._cond.wait(timeout=self.connect_timeout_s):
                    raise TimeoutError(f"no free spend-store connection after {self.connect_timeout_s}s")
            conn = self._idle.pop() if self._idle else None
            if conn is None:
                self._open += 1
        pid = os.getpid()
        if conn is None or conn.closed:
            try:
                conn = self._connect()
            except BaseException:
                with self._cond:
                    if pid == self._pid:
                        self._open -= 1
                        self._cond.notify()
                raise
        try:
            yield conn
        except BaseException:
            # A broken connection (server restart, network) is dropped, not pooled: the next use reconnects.
            if conn is not None and (conn.broken or conn.closed):
                self._discard(conn, pid)
                conn = None
            raise
        finally:
            if conn is not None:
                self._release(conn, pid)

    def _release(self, conn: Any, pid: int) -> None:
        with self._cond:
            if pid == self._pid:
                self._idle.append(conn)
                self._cond.notify()

    def _discard(self, conn: Any, pid: int) -> None:
        try:
            conn.close()
        except Exception:  # pragma: no cover - closing a dead socket
            pass
        with self._cond:
            if pid == self._pid:
                self._open -= 1
                self._cond.notify()

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """One statement; retried once on a fresh connection when the pooled one turned out to be dead."""
        for attempt in (1, 2):
            try:
                with self._connection() as conn:
                    cur = conn.execute(sql, params)
                    return cur.fetchall() if cur.description else [(cur.rowcount,)]
            except self._psycopg.OperationalError:
                if attempt == 2:
                    raise
                log.info("spendmeter budgets: spend store connection lost; reconnecting once")
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the SpendStore interface -------------------------------------------------------------------
    def add(self, items: Sequence[tuple[SpendKey, int]]) -> None:
        if not items:
            return
        # One row per key (ON CONFLICT cannot touch a row twice in one statement), in a fixed order, so
        # two writers locking the same rows take the locks in the same order and cannot deadlock.
        merged: dict[SpendKey, int] = {}
        for key, nano in items:
            merged[key] = merged.get(key, 0) + nano
        rows = sorted(merged.items())
        budgets = [b for (b, _k, _p), _n in rows]
        keys = [k for (_b, k, _p), _n in rows]
        periods = [p for (_b, _k, p), _n in rows]
        amounts = [n for _key, n in rows]
        self._query(_ADD, (budgets, periods, keys, amounts))

    def get(self, budget: str, key: str, period: str) -> int:
        rows = self._query(_GET, (budget, period, key))
        return int(rows[0][0]) if rows else 0

    def top(self, budget: str, period: str, min_nano: int, limit: int) -> list[tuple[str, int]]:
        return [(str(k), int(v)) for k, v in self._query(_TOP, (budget, period, min_nano, limit))]

    def count_at_least(self, budget: str, period: str, nano: int) -> int:
        return int(self._query(_COUNT, (budget, period, nano))[0][0])

    def prune(self, budget: str, before_period: str) -> int:
        return int(self._query(_PRUNE, (budget, before_period))[0][0])

    def close(self) -> None:
        with self._cond:
            idle, self._idle = self._idle, []
            mine = self._pid == os.getpid()
            self._open -= len(idle)
        if mine:
            for conn in idle:
                try:
                    conn.close()
                except Exception:  # pragma: no cover
                    pass
