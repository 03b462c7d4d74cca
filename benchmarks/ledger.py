"""Ledger ingest: rows per second from `LedgerSink.on_call()` to committed rows, on SQLite and PostgreSQL.

- `on_call -> committed`: N calls handed to a `LedgerSink` (queue big enough to drop none), timed until
  `close()` has written them all: the caller's row building, the writer thread's conversion and the SQL.
  The writer is behind from the start, so it writes up to `max_batch_size` rows per transaction (the sink's
  default, 5 x batch_size); one more line shows the largest batch size with max_batch_size = batch_size.
- `write only`: the writer thread's part alone on SQLite (`storage.rows` encoder + `sqlite3.executemany`, one
  transaction per batch), the same on the table without its indexes (what they cost), and SQLAlchemy Core on
  the same table when it is importable (spendmeter does not
  depend on it; docs/ledger.md says why).
- PostgreSQL: the same sink through psycopg's pool, on a throwaway server started like the e2e tests start
  theirs (initdb in a temp dir, pg_ctl, a free 127.0.0.1 port; PostgreSQL's default durability unless
  `--pg-fast`), or on `--dsn` (the table is emptied before each run: use a scratch database).

Run: `python benchmarks/ledger.py [ROWS] [DIR] [--batch 500 2000] [--repeat 3] [--dsn DSN | --no-postgres]
[--json]` (defaults: 200000 rows, a temporary directory). Adds ./src to sys.path when spendmeter is not
installed. Prints the best and the median of the repeats; numbers depend on the disk and on what else the
machine runs: compare the lines of one run, not runs on different machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

try:
    import spendmeter  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import _postgres

from spendmeter.call import Attribution, Call, Cost, Usage
from spendmeter.sinks.ledger import LEDGER_TABLE, TABLE, LedgerSink
from spendmeter.storage.rows import encoder
from spendmeter.storage.schema import micros
from spendmeter.storage.sqlite import connect, transaction

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def calls(n: int) -> list[Call]:
    """Realistic rows: time moves on, 200 users, 10 features, exact sub-cent costs."""
    out = []
    for i in range(n):
        call = Call("openai", "chat", "gpt-4o-mini", Attribution(user=f"user-{i % 200}", feature=f"feature-{i % 10}",
                    agent="router", conversation=f"c-{i}"), started_at=T0 + timedelta(milliseconds=i))  # fmt: skip
        call.response_model = "gpt-4o-mini-2024-07-18"
        call.usage = Usage(input=1000 + i % 97, cache_read=512, output=200 + i % 13, source="reported")
        parts = [Decimal("0.00000015") * (1000 + i % 97), Decimal("0.000000075") * 512, Decimal(0),
                 Decimal("0.0000006") * (200 + i % 13)]  # fmt: skip
        call.cost = Cost(*parts, total=sum(parts, Decimal(0)), source="bench", price_entry="gpt-4o-mini")
        call.ended_at, call.duration_s, call.end_reason = call.started_at + timedelta(seconds=1), 1.0, "completed"
        out.append(call)
    return out


def sink_ingest(work: list[Call], target: str, batch_size: int, max_batch: int | None = None) -> tuple[float, ...]:
    """(rows/s from the first on_call() to the last committed row, µs per on_call() on the caller's thread,
    process CPU µs per row: every thread). `max_batch`: the sink's max_batch_size (default 5 x batch_size:
    rows per transaction once it is behind)."""
    sink = LedgerSink(target, max_queue=len(work) + 1, batch_size=batch_size, max_batch_size=max_batch)
    on_call = sink.on_call
    cpu = time.process_time()
    started = time.perf_counter()
    for call in work:
        on_call(call)
    handed = time.perf_counter()
    sink.close(timeout=600)
    rate = len(work) / (time.perf_counter() - started)
    assert sink.written == len(work), (sink.written, sink.dropped, sink.failed_rows)
    return rate, (handed - started) / len(work) * 1e6, (time.process_time() - cpu) / len(work) * 1e6


def sqlite_file(where: str) -> str:
    return os.path.join(tempfile.mkdtemp(dir=where), "ledger.db")


def write_only(rows: list[tuple[Any, ...]], where: str, batch_size: int, indexes: bool = True) -> float:
    """What the writer thread does per batch, on its own: encode the rows, executemany, commit. `indexes=False`:
    the table without its 3 indexes, to show what they cost."""
    encode = encoder(LEDGER_TABLE, "sqlite")
    conn = connect(sqlite_file(where), bulk=True)
    conn.execute("PRAGMA journal_mode=WAL")
    create, *index_sql = LEDGER_TABLE.create("sqlite")
    for sql in (create, *(index_sql if indexes else ())):
        conn.execute(sql)
    insert = LEDGER_TABLE.insert("sqlite")
    started = time.perf_counter()
    for k in range(0, len(rows), batch_size):
        with transaction(conn):
            conn.executemany(insert, encode(rows[k : k + batch_size]))
    rate = len(rows) / (time.perf_counter() - started)
    conn.close()
    return rate


def sqlalchemy_core(rows: list[tuple[Any, ...]], where: str, batch_size: int) -> float | None:
    try:
        import sqlalchemy as sa
    except ImportError:
        return None

    class ExactDecimal(sa.types.TypeDecorator):  # sa.Numeric goes through float on SQLite
        impl, cache_ok = sa.Text, True

        def process_bind_param(self, value: Any, dialect: Any) -> Any:
            return None if value is None else format(value, "f")

    class UtcMicros(sa.types.TypeDecorator):  # what our SQLite timestamps are: integer microseconds, UTC
        impl, cache_ok = sa.Integer, True

        def process_bind_param(self, value: Any, dialect: Any) -> Any:
            return None if value is None else micros(value)

    types = {"text": sa.Text, "int": sa.Integer, "bigint": sa.BigInteger, "bool": sa.Boolean, "float": sa.Float,
             "decimal": ExactDecimal, "timestamp": UtcMicros}  # fmt: skip
    meta = sa.MetaData()
    table = sa.Table(
        LEDGER_TABLE.name,
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *(sa.Column(c.name, types[c.type], nullable=not c.not_null) for c in LEDGER_TABLE.columns),
    )
    for name, cols in LEDGER_TABLE.indexes:
        sa.Index(name, *(table.c[c] for c in cols))
    engine = sa.create_engine(f"sqlite:///{sqlite_file(where)}")

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi: sqlite3.Connection, _record: Any) -> None:  # the same settings as ours
        for pragma in ("page_size = 16384", "cache_size = -32768", "wal_autocheckpoint = 2500",
                       "journal_mode = WAL", "synchronous = NORMAL"):  # fmt: skip
            dbapi.execute(f"PRAGMA {pragma}")

    meta.create_all(engine)
    names, insert = LEDGER_TABLE.column_names, table.insert()
    started = time.perf_counter()
    for k in range(0, len(rows), batch_size):
        with engine.begin() as conn:
            conn.execute(insert, [dict(zip(names, r, strict=True)) for r in rows[k : k + batch_size]])
    rate = len(rows) / (time.perf_counter() - started)
    engine.dispose()
    return rate


def repeat(n: int, run: Callable[[], Any]) -> list[Any]:
    return [run() for _ in range(n)]


def summary(rates: list[float]) -> dict[str, float]:
    return {"best": round(max(rates)), "median": round(statistics.median(rates)), "runs": len(rates)}


def line(what: str, rates: list[float], extra: str = "") -> None:
    s = summary(rates)
    print(f"{what:<48} best {s['best']:>8,} rows/s  median {s['median']:>8,}{extra}")


def postgres_runs(args: argparse.Namespace, work: list[Call], out: dict[str, Any]) -> None:
    server = None
    dsn = args.dsn
    if dsn is None:
        bindir = _postgres.find_postgres()
        if bindir is None:
            print("PostgreSQL: no server binaries found (/usr/lib/postgresql/*/bin); use --dsn")
            return
        server = _postgres.start(bindir, fast=args.pg_fast)
        dsn = server.dsn
        out["postgres"] = {"server": f"{_postgres.version(server)}, throwaway on 127.0.0.1, "
                           + ("fsync/synchronous_commit off" if args.pg_fast else "default durability")}  # fmt: skip
    else:
        out["postgres"] = {"server": "--dsn"}
    print(f"PostgreSQL: {out['postgres']['server']}")
    try:
        import psycopg

        def fresh() -> str:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
                conn.execute("DROP TABLE IF EXISTS spendmeter_schema_version")
            return dsn

        for batch in args.batch:
            results = repeat(args.repeat, lambda b=batch: sink_ingest(work, fresh(), b))
            rates, cpu = [r[0] for r in results], [r[2] for r in results]
            out["postgres"][f"sink_batch_{batch}"] = {**summary(rates), "client_cpu_us_per_row": round(min(cpu), 1)}
            line(f"postgres batch {batch:>5}: on_call -> committed", rates, f"  (client CPU {min(cpu):.1f} µs/row)")
    finally:
        if server is not None:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="?", type=int, default=200_000)
    parser.add_argument("dir", nargs="?", default=tempfile.gettempdir(), help="where the SQLite files go")
    parser.add_argument("--batch", type=int, nargs="+", default=[500, 2000], help="batch sizes (default 500 2000)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dsn", help="PostgreSQL to use instead of a throwaway server (its ledger table is dropped)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--pg-fast", action="store_true", help="throwaway server with fsync and synchronous_commit off")
    parser.add_argument("--no-sqlalchemy", action="store_true")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    args = parser.parse_args()

    machine = {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "load_avg": os.getloadavg()}
    out: dict[str, Any] = {"machine": machine, "rows": args.rows, "sqlite": {"dir": args.dir}}
    m = out["machine"]
    print(f"{m['cpu']}, {m['cpus']} CPUs, Python {m['python']}, SQLite {m['sqlite']}, load average "
          f"{m['load_avg'][0]:.2f}; {args.rows} rows into {args.dir}, best and median of {args.repeat}")  # fmt: skip
    work = calls(args.rows)
    builder = LedgerSink.__new__(LedgerSink)
    builder.service_name = None
    rows = [builder._row(c) for c in work]
    for batch in args.batch:
        results = repeat(args.repeat, lambda b=batch: sink_ingest(work, sqlite_file(args.dir), b))
        rates, caller, cpu = [r[0] for r in results], [r[1] for r in results], [r[2] for r in results]
        out["sqlite"][f"sink_batch_{batch}"] = {**summary(rates), "on_call_us": round(min(caller), 2),
                                                "cpu_us_per_row": round(min(cpu), 1)}  # fmt: skip
        line(f"sqlite batch {batch:>5}: on_call -> committed", rates,
             f"  (on_call {min(caller):.1f} µs, CPU {min(cpu):.1f} µs/row)")  # fmt: skip
        if batch == max(args.batch):  # for reference: no group commit (every transaction batch_size rows)
            rates = [r[0] for r in repeat(args.repeat, lambda b=batch: sink_ingest(work, sqlite_file(args.dir), b, b))]
            out["sqlite"][f"sink_batch_{batch}_max_{batch}"] = summary(rates)
            line(f"sqlite batch {batch:>5}, max_batch_size {batch}: on_call -> committed", rates)
        rates = repeat(args.repeat, lambda b=batch: write_only(rows, args.dir, b))
        out["sqlite"][f"write_only_batch_{batch}"] = summary(rates)
        line(f"sqlite batch {batch:>5}: write only, encode + executemany", rates)
        rates = repeat(args.repeat, lambda b=batch: write_only(rows, args.dir, b, indexes=False))
        out["sqlite"][f"write_only_no_indexes_batch_{batch}"] = summary(rates)
        line(f"sqlite batch {batch:>5}: write only, without the 3 indexes", rates)
        core = None if args.no_sqlalchemy else sqlalchemy_core(rows, args.dir, batch)
        if core is not None:
            out["sqlite"][f"sqlalchemy_core_batch_{batch}"] = round(core)
            print(f"sqlite batch {batch:>5}: write only, SQLAlchemy Core        {core:>8,.0f} rows/s (one run)")
    if not args.no_postgres:
        postgres_runs(args, work, out)
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
