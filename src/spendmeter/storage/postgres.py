"""PostgreSQL for spendmeter's stores: a `psycopg_pool.ConnectionPool` per store, shared by its threads.

- Connects once at construction, directly, so a wrong DSN, host or password fails at `init()` with a
  `ConfigError` that shows the DSN redacted (`postgresql://user:***@host/db`), in a second rather than after
  the pool's reconnect back-off.
- Connections are in autocommit mode: a read is one statement, a spend `add()` is one statement; the
  ledger's batches run in explicit transactions (`insert_rows`: COPY, about 3x the rows/s of a pipelined
  `executemany` of INSERTs, benchmarks/ledger.py).
- A statement that fails on a dead connection (server restart, network) is retried once after
  `pool.check()` has thrown the broken idle connections away.
- Fork-safe: a child process never uses its parent's pool (its sockets are the parent's, and its worker
  threads stayed in the parent). The child forgets it without closing anything and opens its own pool on
  first use.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from spendmeter.errors import ConfigError
from spendmeter.storage.dsn import Target
from spendmeter.storage.schema import Component, Dialect, Row, Table, ensure

log = logging.getLogger("spendmeter")

T = TypeVar("T")
Statement = Callable[..., list[Row]]  # (sql, params=()) -> rows

INSTALL_HINT = "pip install 'spendmeter[postgres]'"


def import_psycopg(what: str) -> tuple[Any, Any]:
    """(psycopg, psycopg_pool), or a ConfigError that says how to install them."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        missing = getattr(exc, "name", None) or "psycopg"
        raise ConfigError(f"{what} needs {missing}, which is not installed: {INSTALL_HINT}") from None
    return psycopg, psycopg_pool


class PostgresDatabase:
    """One PostgreSQL database behind a connection pool (at most `max_size` connections per process)."""

    dialect: Dialect = "postgresql"

    def __init__(
        self,
        target: Target,
        *,
        key: str = "store",
        what: str = "the database",
        max_size: int = 8,
        min_size: int = 1,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if target.kind != "postgresql" or not target.dsn:
            raise ValueError(f"not a PostgreSQL target: {target!r}")
        self._psycopg, self._pool_module = import_psycopg(f"{key}: postgresql://")
        self.target = target
        self.key = key
        self.what = what
        self.max_size = max_size
        self.min_size = min(min_size, max_size)
        self.connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._closed = False
        self._probe()
        self._pool: Any = self._open_pool()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (db := ref()) is not None and db._after_fork())

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.target.redacted!r}, max_size={self.max_size})"

    # -- the pool -----------------------------------------------------------------------------------
    def _connect_kwargs(self) -> dict[str, Any]:
        return {"autocommit": True, "connect_timeout": max(1, round(self.connect_timeout_s))}

    def _probe(self) -> None:
        try:
            conn = self._psycopg.connect(self.target.dsn, **self._connect_kwargs())
        except self._psycopg.Error as exc:
            # `from None`: the message below says it all, and nothing chained can carry the DSN along.
            raise ConfigError(
                f"cannot connect to {self.what} {self.target.redacted}: {self.target.scrub(str(exc)).strip()}",
                key=self.key,
            ) from None
        conn.close()

    def _open_pool(self) -> Any:
        pool = self._pool_module.ConnectionPool(
            self.target.dsn,
            kwargs=self._connect_kwargs(),
            min_size=self.min_size,
            max_size=self.max_size,
            timeout=self.connect_timeout_s,  # waiting for a free connection
            name=f"spendmeter-{self.key}",
            num_workers=1,  # connects in the background; the pools are small
            open=False,
        )
        pool.open(wait=False)
        return pool

    @property
    def pool(self) -> Any:
        """This process's `psycopg_pool.ConnectionPool` (opened on first use in a forked child)."""
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    if self._closed:
                        raise self._pool_module.PoolClosed(f"{self.what} is closed")
                    self._pool = self._open_pool()
                pool = self._pool
        return pool

    def _after_fork(self) -> None:
        inherited, self._pool = self._pool, None
        self._lock = threading.Lock()  # it may have been held by a thread that stayed in the parent
        if inherited is not None:
            # The pool does not survive a fork: its threads stayed behind and its sockets are the parent's.
            # Marked closed, its __del__ does nothing here; the connections it holds are released without
            # a goodbye to the server (psycopg never ends a connection from a process that did not open it).
            inherited._closed = True

    @contextmanager
    def connection(self) -> Iterator[Any]:
        with self.pool.connection() as conn:
            yield conn

    def reset(self) -> None:
        """Drop the broken idle connections (each idle one is tested); the pool replaces them."""
        try:
            self.pool.check()
        except Exception:  # pragma: no cover - the next statement reports what is wrong
            log.debug("spendmeter: checking the %s pool failed", self.key, exc_info=True)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # -- work ---------------------------------------------------------------------------------------
    def ensure(self, component: Component) -> None:
        try:
            with self.connection() as conn, conn.transaction():
                ensure(conn, "postgresql", component, where=f"PostgreSQL {self.target.redacted}")
        except self._psycopg.Error as exc:
            raise ConfigError(
                f"cannot create the {component.name} tables in PostgreSQL {self.target.redacted}: "
                f"{self.target.scrub(str(exc)).strip()}",
                key=self.key,
            ) from None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._run(sql, params, fetch=True)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement (atomic on its own); returns the rows it changed."""
        return self._run(sql, params, fetch=False)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One statement for each row, all in one transaction; psycopg pipelines them (one round trip)."""
        with self.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, rows)

    def insert_rows(self, table: Table, rows: Iterable[Sequence[Any]]) -> None:
        """Rows of every column of `table`, in its order, in one transaction (every row lands, or none), with
        `COPY ... FROM STDIN`: the server parses each value as it would the same INSERT parameter."""
        sql = f"COPY {table.name} ({', '.join(table.column_names)}) FROM STDIN"
        with self.connection() as conn, conn.transaction(), conn.cursor() as cur, cur.copy(sql) as copy:
            write_row = copy.write_row
            for row in rows:
                write_row(row)

    def run(self, work: Callable[[Statement], T]) -> T:
        """`work(run_one)` inside one transaction on one connection; `run_one(sql, params)` returns the rows
        (empty for a statement that returns none). Retried once on a dead connection, like `_run`: `work`
        must not have effects outside the database."""
        for attempt in (1, 2):
            try:
                with self.connection() as conn, conn.transaction():

                    def one(sql: str, params: Sequence[Any] = (), conn: Any = conn) -> list[Row]:
                        cur = conn.execute(sql, params)
                        return cur.fetchall() if cur.description is not None else []

                    return work(one)
            except self._psycopg.OperationalError as exc:
                if attempt == 2 or isinstance(exc, (self._pool_module.PoolTimeout, self._pool_module.PoolClosed)):
                    raise
                self.reset()
        raise AssertionError("unreachable")  # pragma: no cover

    def _run(self, sql: str, params: Sequence[Any], *, fetch: bool) -> Any:
        pool_errors = (self._pool_module.PoolTimeout, self._pool_module.PoolClosed)
        for attempt in (1, 2):
            try:
                with self.connection() as conn:
                    cur = conn.execute(sql, params)
                    return cur.fetchall() if fetch else int(cur.rowcount)
            except self._psycopg.OperationalError as exc:
                if attempt == 2 or isinstance(exc, pool_errors):
                    raise
                log.info("spendmeter: a %s connection was lost; retrying once", self.key)
                self.reset()
        raise AssertionError("unreachable")  # pragma: no cover
