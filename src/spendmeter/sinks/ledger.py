"""The ledger: one SQL row per finished call, for audits and ad-hoc analytics.

Where: a SQLite file (`sqlite:///relative.db`, `sqlite:////absolute.db`, or a plain path) or PostgreSQL
(`postgresql://user@host:5432/db`, or `env:VAR` naming such a DSN), parsed by `spendmeter.storage.dsn`.
Costs are exact decimals: PostgreSQL NUMERIC, SQLite TEXT in plain notation (`0.00000015`, never a float).

The caller's thread never does I/O here: `on_call()` builds a tuple and puts it on the bounded queue of a
`spendmeter.storage.BatchWriter`, whose one thread writes batches, one transaction per batch. When the queue
is full, rows are dropped (`dropped`, internal error kind `ledger.dropped`, one per row); a batch that fails
twice (once more on a fresh connection) is lost (`failed_rows`, kind `ledger.write_failed`, one per row).
The ledger is an audit trail, not the source of budget truth.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
from typing import Any

from spendmeter._contain import report
from spendmeter.call import Call, Cost, Unpriced
from spendmeter.runtime import finisher
from spendmeter.storage import BatchWriter, Column, Component, Database, Table, Target, open_database, parse_target
from spendmeter.storage.rows import MAX_TEXT as MAX_TEXT  # re-exported: where the ledger's limits were defined
from spendmeter.storage.rows import encoder
from spendmeter.storage.rows import storable_row as storable_row
from spendmeter.storage.schema import AddColumn, IntegerTimestamps

SCHEMA_VERSION = 4  # 2: the `tags` column (attribute(team=...)); 3: tool fees, list price, tool uses; 4: SQLite
# timestamps as integer microseconds (were ISO text). An older ledger is migrated when opened: it gains the newer
# columns (NULL in its old rows), and a SQLite one is rebuilt once with integer timestamps.
TABLE = "spendmeter_ledger"
log = logging.getLogger("spendmeter")

# Schema 3 (issue 10): the `tools` cost class, the list-price figure beside a billed cost, the tool uses.
_V3 = (
    Column("cost_tools_usd", "decimal"),  # server-side tool (and per-request) fees, inside cost_total_usd
    Column("cost_list_usd", "decimal"),  # list-price figure when cost_total_usd is what the provider billed
    Column("tool_uses", "text"),  # JSON object of billed tool uses (`{"web_search": 3}`); NULL: none
)

# In the order of the row tuple `LedgerSink._row()` builds.
LEDGER_TABLE = Table(
    TABLE,
    (
        Column("started_at", "timestamp", not_null=True),  # SQLite: microseconds since 1970-01-01 UTC
        Column("ended_at", "timestamp"),
        Column("duration_s", "float"),
        Column("service", "text"),
        Column("provider", "text", not_null=True),
        Column("operation", "text", not_null=True),
        Column("request_model", "text"),
        Column("response_model", "text"),
        Column("model", "text", not_null=True),  # what the call is accounted to (response, else request)
        Column("deployment", "text"),
        Column("server_address", "text"),
        Column("user_id", "text"),  # not "user": a reserved word in PostgreSQL
        Column("feature", "text"),
        Column("agent", "text"),
        Column("conversation", "text"),
        Column("stream", "bool", not_null=True),
        Column("batch", "bool", not_null=True),
        Column("status", "text", not_null=True),
        Column("error_type", "text"),
        Column("end_reason", "text"),
        Column("attempts", "int", not_null=True),
        Column("request_service_tier", "text"),
        Column("service_tier", "text"),
        Column("response_id", "text"),
        Column("input_tokens", "bigint", not_null=True),
        Column("cache_read_tokens", "bigint", not_null=True),
        Column("cache_write_5m_tokens", "bigint", not_null=True),
        Column("cache_write_1h_tokens", "bigint", not_null=True),
        Column("output_tokens", "bigint", not_null=True),
        Column("reasoning_tokens", "bigint", not_null=True),  # a subset of output_tokens
        Column("usage_source", "text", not_null=True),
        Column("cost_input_usd", "decimal"),  # NULL when the call was not priced
        Column("cost_cache_read_usd", "decimal"),
        Column("cost_cache_write_usd", "decimal"),
        Column("cost_output_usd", "decimal"),
        Column("cost_total_usd", "decimal"),
        Column("currency", "text"),
        Column("cost_source", "text"),
        Column("price_entry", "text"),
        Column("unpriced_reason", "text"),  # set when pricing found no price; NULL costs then
        Column("tags", "text"),  # JSON object of the call's tags, keys sorted (`{"team": "payments"}`); NULL: none
        *_V3,
    ),
    indexes=(
        (f"{TABLE}_by_started_at", ("started_at",)),
        (f"{TABLE}_by_user_id", ("user_id", "started_at")),
        (f"{TABLE}_by_feature", ("feature", "started_at")),
    ),
)
COLUMN_NAMES = LEDGER_TABLE.column_names
INTEGER_TIMESTAMPS = IntegerTimestamps(LEDGER_TABLE)
MIGRATIONS = ((2, (AddColumn(TABLE, Column("tags", "text")),)), (3, tuple(AddColumn(TABLE, c) for c in _V3)),
              (4, (INTEGER_TIMESTAMPS,)))  # fmt: skip
# SQLite: rows checked for ISO text timestamps per batch, at most, while catching up with the existing rows.
STRAY_CHECK_ROWS = 100_000
LEDGER = Component("ledger", SCHEMA_VERSION, (LEDGER_TABLE,), lock_id=0x4C4544474552, config_key="ledger",  # "LEDGER"
                   migrations=MIGRATIONS)
BULK = True  # SQLite tuned for large batches (spendmeter.storage.sqlite.BULK_*)


def is_data_error(exc: BaseException) -> bool:
    """The database refused the values (one bad row), as opposed to being unreachable or broken."""
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError | sqlite3.InterfaceError | OverflowError
                  | ValueError | TypeError):  # fmt: skip
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.DataError | psycopg.IntegrityError)


class LedgerBackend:
    """The ledger table in one database: `write(rows)` inserts a batch in one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._encode = encoder(LEDGER_TABLE, db.dialect)  # storable values, then what the driver binds
        db.ensure(LEDGER)
        self._strays = INTEGER_TIMESTAMPS.strays() if db.dialect == "sqlite" else None
        self._checked = 0  # SQLite: the rows up to this id are known to hold integer timestamps

    def __repr__(self) -> str:
        return f"LedgerBackend({self.db.target.redacted!r})"

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert `LedgerSink._row()` tuples, made storable (`storage.rows`), in one transaction."""
        self.db.insert_rows(LEDGER_TABLE, self._encode(rows))
        if self._strays is not None:
            strays = self._strays
            try:
                self._checked = self.db.run(lambda run: self._convert_strays(run, strays))
            except Exception:  # the batch is written: never retried for this; the next batch tries again
                report("ledger.timestamps_unconverted")

    def _convert_strays(self, run: Any, strays: str) -> int:
        """After its schema-4 rebuild, a SQLite ledger can still receive rows with ISO text timestamps from a
        process of an older spendmeter (one not yet restarted during an upgrade). Each batch converts them
        in the rows since the last check: all rows once (from id 0, `STRAY_CHECK_ROWS` per batch), then
        only the new ones (by id range). Returns the id checked up to."""
        top = int(run(f"SELECT coalesce(max(id), 0) FROM {TABLE}")[0][0])
        upto = min(top, self._checked + STRAY_CHECK_ROWS)
        run(strays, (self._checked, upto))
        converted = int(run("SELECT changes()")[0][0])
        if converted:
            log.info("spendmeter ledger: %d rows written with ISO text timestamps by an older spendmeter converted",
                     converted)  # fmt: skip
        return upto

    def reconnect(self) -> None:
        self.db.reset()

    def close(self) -> None:
        self.db.close()


def open_backend(target: str | os.PathLike[str] | Target) -> LedgerBackend:
    """Connect to the ledger database and create its tables: a bad target fails here, with a ConfigError."""
    if not isinstance(target, Target):
        target = parse_target(target, key="ledger")
    db = open_database(target, key="ledger", what="the ledger database", max_connections=2, bulk=BULK)
    try:
        return LedgerBackend(db)
    except BaseException:
        db.close()
        raise


class LedgerSink:
    """Sink: one ledger row per finished call, written in batches by a background thread."""

    def __init__(
        self,
        target: str | os.PathLike[str] | Target,
        *,
        service_name: str | None = None,
        max_queue: int = 10_000,
        batch_size: int = 2000,  # up to 2x the rows/s of 500 on SQLite (benchmarks/ledger.py); latency: the interval
        flush_interval_s: float = 1.0,
        max_batch_size: int | None = None,  # behind, up to this many rows per transaction; default 5 x batch_size
    ) -> None:
        self.backend = open_backend(target)  # connects and creates the schema: fails fast at init()
        self.target = self.backend.db.target
        self.service_name = service_name
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        # Group commit when the writer is behind: on SQLite a 10 000-row transaction costs about 3/4 the CPU
        # per row of a 2000-row one (fewer commits, each index page written once for more rows).
        self.max_batch_size = 5 * batch_size if max_batch_size is None else max_batch_size
        self.writer: BatchWriter[tuple[Any, ...]] = BatchWriter(
            self._write,
            kind="ledger",
            reset=self._reconnect,
            max_queue=max_queue,
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            max_batch_size=self.max_batch_size,
            thread_name="spendmeter-ledger",
        )

    def __repr__(self) -> str:
        return (
            f"LedgerSink({self.target.redacted!r}, written={self.written}, dropped={self.dropped}, "
            f"failed_rows={self.failed_rows})"
        )

    @property
    def dropped(self) -> int:
        """Rows refused because the queue was full (or the ledger closed)."""
        return self.writer.dropped

    @property
    def written(self) -> int:
        return self.writer.written

    @property
    def failed_rows(self) -> int:
        """Rows lost with a batch the database refused twice."""
        return self.writer.failed_rows

    # -- the hot path -------------------------------------------------------------------------------
    def on_call(self, call: Call) -> None:
        self.writer.put(self._row(call))  # never blocks; after close() the row is counted as dropped

    def _row(self, call: Call) -> tuple[Any, ...]:
        # The caller's thread runs this once per call: plain attribute reads into one tuple (~2 µs).
        who, usage, cost = call.who, call.usage, call.cost  # who as every output shows it (user hashed if set)
        unpriced = None
        if isinstance(cost, Cost):
            c_in, c_read, c_write, c_out, c_total = (cost.input, cost.cache_read, cost.cache_write, cost.output,
                                                     cost.total)  # fmt: skip
            currency, source, entry = cost.currency, cost.source, cost.price_entry
            tools, listed = cost.tools, cost.list_total
        else:
            c_in = c_read = c_write = c_out = c_total = currency = source = entry = tools = listed = None
            if isinstance(cost, Unpriced):
                unpriced = cost.reason
        tags, uses = who.tags, call.tool_uses
        return (
            call.started_at, call.ended_at, call.duration_s, self.service_name,
            call.provider, call.operation, call.request_model, call.response_model, call.model,
            call.deployment, call.server_address,
            who.user, who.feature, who.agent, who.conversation,
            call.stream, call.batch, call.status, call.error_type, call.end_reason, call.attempts,
            call.request_service_tier, call.service_tier, call.response_id,
            usage.input, usage.cache_read, usage.cache_write_5m, usage.cache_write_1h, usage.output,
            usage.reasoning, usage.source,
            c_in, c_read, c_write, c_out, c_total, currency, source, entry, unpriced,
            json.dumps(dict(tags), ensure_ascii=False, separators=(",", ":")) if tags else None,
            # schema 3: tool fees and the list-price figure (a Cost only), the tool uses
            tools, listed, json.dumps(dict(uses), separators=(",", ":"), sort_keys=True) if uses else None,
        )  # fmt: skip

    # The writer thread calls these; looked up on each batch, so a test can wrap `backend.write`.
    def _write(self, rows: list[tuple[Any, ...]]) -> int:
        """Write a batch; returns how many rows were refused. The backend makes values storable first, on this
        thread (not the caller's); a batch the database still refuses for its data is split in halves until
        only the offending rows are left out (counted per row by the batch writer: `ledger.write_failed`).
        Any other error (the database is down) goes up to the batch writer, which retries the batch once."""
        try:
            self.backend.write(rows)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            return self._split(rows)
        return 0

    def _split(self, rows: list[tuple[Any, ...]]) -> int:
        if len(rows) == 1:
            log.debug("spendmeter ledger: a row was refused for its values: %r", rows[0][:15], exc_info=True)
            return 1
        refused = 0
        mid = len(rows) // 2
        for half in (rows[:mid], rows[mid:]):
            try:
                self.backend.write(half)
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                refused += self._split(half)
        return refused

    def _reconnect(self) -> None:
        self.backend.reconnect()

    # -- control ------------------------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Write every row of a call that ended before this call. True when done within `timeout`."""
        finisher.flush()  # calls still queued for the background finisher become rows first
        return self.writer.flush(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, stop the writer, close the connections. Rows arriving later are dropped."""
        if self.writer.closed:
            return
        self.writer.close(timeout)
        self.backend.close()

