"""SQLite for spendmeter's stores: one file shared by the threads and processes of one host.

- WAL mode (stored in the file, set once): readers never wait for the writer, and the writer never waits
  for readers.
- `synchronous=NORMAL`: durable across application crashes in WAL mode; only an OS crash or power loss can
  lose the last commits, an acceptable trade for accounting at about one fsync per checkpoint.
- One connection per thread, opened on first use; after `fork()` the child opens its own and never touches
  (not even closes) the parent's: closing an inherited connection can checkpoint or delete the WAL under the
  parent's feet.
- Writes run in `BEGIN IMMEDIATE` transactions: the write lock is taken up front and waited for (busy
  timeout), instead of failing with "database is locked" on a read-to-write upgrade.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from spendmeter._contain import report
from spendmeter.errors import ConfigError
from spendmeter.storage.dsn import Target
from spendmeter.storage.schema import Component, Dialect, Row, Table, ensure

log = logging.getLogger("spendmeter")

T = TypeVar("T")
Statement = Callable[..., list[Row]]  # (sql, params=()) -> rows


# A bulk writer (the ledger: 40 columns, 3 indexes, thousands of rows per transaction) measured 1.5-2x faster
# with bigger pages (fewer page splits; a new file only), a page cache that holds the indexes' hot pages, and
# fewer WAL checkpoints (each is an fsync of the database file).
BULK_PAGE_SIZE = 16384
BULK_CACHE_KIB = 32 * 1024
BULK_CHECKPOINT_PAGES = 2500  # x 16 KiB pages: ~40 MB of WAL between checkpoints


def connect(path: str, *, busy_timeout_s: float = 30.0, bulk: bool = False) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves. check_same_thread=False: a connection is
    # used by one thread at a time, but may be closed by another (close()).
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    conn.execute("PRAGMA synchronous = NORMAL")
    if bulk:
        conn.execute(f"PRAGMA page_size = {BULK_PAGE_SIZE}")  # takes effect only while the file is empty
        conn.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {BULK_CHECKPOINT_PAGES}")
        # The WAL file keeps its largest size after a checkpoint; cap what stays on disk.
        conn.execute(f"PRAGMA journal_size_limit = {BULK_CHECKPOINT_PAGES * BULK_PAGE_SIZE * 2}")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (re-raised)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SQLiteDatabase:
    """A SQLite file with per-thread, fork-aware connections. The file (and its directory) is created and
    WAL mode switched on at construction, so an unusable path fails at `init()` with a `ConfigError`.
    `bulk=True`: settings for a writer of large batches (see `BULK_*`)."""

    dialect: Dialect = "sqlite"

    def __init__(
        self,
        target: Target | str,
        *,
        key: str = "store",
        busy_timeout_s: float = 30.0,
        bulk: bool = False,
        create_dirs: bool = True,
    ) -> None:
        self.target = target if isinstance(target, Target) else Target("sqlite", path=target)
        if self.target.kind != "sqlite" or not self.target.path:
            raise ValueError(f"not a SQLite target: {self.target!r}")
        self.path: str = self.target.path
        self.key = key
        self.busy_timeout_s = busy_timeout_s
        self.bulk = bulk
        self._local = threading.local()
        self._mine: list[tuple[int, sqlite3.Connection]] = []  # (pid that opened it, connection)
        self._mine_lock = threading.Lock()
        self._components: list[Component] = []  # ensured again when the file is replaced under us
        check_path(self.path, key, create_dirs=create_dirs)
        try:
            mode = self.connection().execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the SQLite file {self.path}: {exc}; point {key} at a SQLite file "
                              "(or a new path)", key=key) from exc  # fmt: skip
        if str(mode).lower() != "wal":
            log.warning("spendmeter: %s is not in WAL mode (%s); writers may wait longer", self.path, mode)

    def __repr__(self) -> str:
        return f"SQLiteDatabase({self.path!r})"

    # -- connections --------------------------------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        """This thread's connection (a new one in a forked child)."""
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        pid = os.getpid()
        if conn is not None and local.pid == pid:
            return conn
        conn = connect(self.path, busy_timeout_s=self.busy_timeout_s, bulk=self.bulk)
        local.conn, local.pid, local.ino = conn, pid, _inode(self.path)
        with self._mine_lock:
            self._mine.append((pid, conn))
        return conn

    def reset(self) -> None:
        """Close this thread's connection; its next use opens a fresh one."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            return
        self._local.conn = None
        if self._local.pid != os.getpid():
            return  # the parent's: forget it, never close it
        with self._mine_lock:
            self._mine = [(p, c) for p, c in self._mine if c is not conn]
        _close_quietly(conn)

    def close(self) -> None:
        """Close every connection this process opened (never one inherited from a parent)."""
        pid = os.getpid()
        with self._mine_lock:
            mine, self._mine = self._mine, []
        for opener, conn in mine:
            if opener == pid:
                _close_quietly(conn)
        self._local = threading.local()

    # -- work ---------------------------------------------------------------------------------------
    def _live(self) -> sqlite3.Connection:
        """This thread's connection, after checking that the file it has open is still the one at the path:
        a deleted (or replaced) file would take every later write with it, silently. Then the connection is
        reopened (a new file is created), the tables are created again, and the event is counted
        (`storage.sqlite_file_replaced`). A `stat` per transaction: ~1 us."""
        conn = self.connection()
        ino = _inode(self.path)
        if ino is not None and ino == self._local.ino:
            return conn
        report("storage.sqlite_file_replaced", exc_info=False)
        log.warning("spendmeter: the SQLite file %s was deleted or replaced; recreating it", self.path)
        self.reset()
        conn = self.connection()
        with transaction(conn):
            for component in self._components:
                ensure(conn, "sqlite", component, where=self.path)
        return conn

    def ensure(self, component: Component) -> None:
        if component not in self._components:
            self._components.append(component)
        try:
            with transaction(self.connection()) as conn:
                ensure(conn, "sqlite", component, where=self.path)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot create the {component.name} tables in {self.path}: {exc}", key=self.key) from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._live().execute(sql, params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One write statement in its own transaction; returns the rows it changed."""
        with transaction(self._live()) as conn:
            return int(conn.execute(sql, params).rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One statement for each row, all in one transaction: every row lands, or none."""
        with transaction(self._live()) as conn:
            conn.executemany(sql, rows)

    def insert_rows(self, table: Table, rows: Iterable[Sequence[Any]]) -> None:
        """Rows of every column of `table`, in its order, in one transaction: every row lands, or none."""
        self.executemany(table.insert("sqlite"), rows)

    def run(self, work: Callable[[Statement], T]) -> T:
        """`work(run_one)` inside one BEGIN IMMEDIATE transaction; `run_one(sql, params)` returns the rows.
        The write lock is held from the start, so a read-then-write in `work` is atomic across processes."""
        with transaction(self._live()) as conn:
            return work(lambda sql, params=(): conn.execute(sql, params).fetchall())


# Pseudo file systems: SQLite "works" there until the first write fails or the process gets SIGBUS.
_PSEUDO = ("/proc", "/sys", "/dev")


def check_path(path: str, key: str, *, create_dirs: bool = True) -> None:
    """Refuse, with a ConfigError naming `key` and the fix, a path SQLite cannot safely use. Read-only files
    or directories matter most: WAL memory-maps the `-shm` file, and a mapping that cannot be backed kills
    the process with SIGBUS instead of raising. With `create_dirs=False` (the ledger) missing directories are
    an error, not created: a typo in the path would otherwise write the audit trail where nobody looks."""
    real = os.path.realpath(path)
    if any(real == p or real.startswith(p + "/") for p in _PSEUDO):
        raise _unusable(path, key, f"it is on a pseudo file system ({real}); choose a path on a disk")
    parent = os.path.dirname(real) or "."
    if create_dirs and not os.path.exists(parent):
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise _unusable(path, key, f"cannot create the directory {parent}: {exc.strerror}") from None
    if not os.path.isdir(parent):
        what = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise _unusable(path, key, f"{parent} {what}: create the directory (mkdir -p) or fix the path")
    if os.path.isdir(real):
        raise _unusable(path, key, f"it is a directory; name a file in it, e.g. {os.path.join(path, 'spend.db')}")
    if os.path.exists(real):
        if not os.path.isfile(real):
            raise _unusable(path, key, "it is not a regular file")
        if not os.access(real, os.R_OK | os.W_OK) or not _writable(real):
            raise _unusable(path, key, "it is read-only (or immutable); SQLite writes it and its -wal/-shm files: "
                            "make it writable, or copy it elsewhere")  # fmt: skip
        with open(real, "rb") as fh:
            head = fh.read(16)
        if head and head != b"SQLite format 3\x00":
            raise _unusable(path, key, f"it is not a SQLite database (it holds other data); point {key} at a new path")
    if not os.access(parent, os.W_OK | os.X_OK) or not _dir_writable(parent):
        raise _unusable(path, key, f"the directory {parent} is not writable (SQLite creates its -wal and -shm files "
                        "there): fix its permissions or choose another directory")  # fmt: skip


def _unusable(path: str, key: str, why: str) -> ConfigError:
    return ConfigError(f"cannot open the SQLite file {path}: {why}", key=key)


def _writable(path: str) -> bool:
    """access() says yes to root for any mode; opening for writing asks the kernel (immutable, read-only
    mounts)."""
    try:
        with open(path, "r+b"):
            return True
    except OSError:
        return False


def _dir_writable(parent: str) -> bool:
    try:
        fd, probe = tempfile.mkstemp(prefix=".spendmeter-probe-", dir=parent)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _close_quietly(conn: sqlite3.Connection) -> None:
    try:
        conn.close()
    except sqlite3.Error:  # pragma: no cover - already unusable
        pass
