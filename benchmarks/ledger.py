"""Ledger ingest on SQLite: rows per second from `LedgerSink.on_call()` to committed rows, and the SQL write
alone, with `sqlite3.executemany` (what spendmeter does) and, when SQLAlchemy is importable, SQLAlchemy Core
on the same table in the same run (spendmeter does not depend on it; this is what the decision in
docs/ledger.md rests on).

Run: `python benchmarks/ledger.py [ROWS] [DIR]` (defaults: 200000 rows, a temporary directory). Adds ./src
to sys.path when spendmeter is not installed. Numbers depend on the disk and on what else the machine runs:
compare the lines of one run, not runs on different machines.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

try:
    import spendmeter  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from spendmeter.call import Attribution, Call, Cost, Usage
from spendmeter.sinks.ledger import LEDGER_TABLE, LedgerSink
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


def sink_ingest(work: list[Call], where: str, batch_size: int) -> float:
    sink = LedgerSink(os.path.join(tempfile.mkdtemp(dir=where), "ledger.db"), max_queue=len(work) + 1,
                      batch_size=batch_size)  # fmt: skip
    started = time.perf_counter()
    for call in work:
        sink.on_call(call)
    sink.close(timeout=600)
    assert sink.written == len(work), (sink.written, sink.dropped, sink.failed_rows)
    return len(work) / (time.perf_counter() - started)


def write_only(rows: list[tuple[Any, ...]], where: str, batch_size: int) -> float:
    adapt = LEDGER_TABLE.adapter("sqlite")
    assert adapt is not None
    conn = connect(os.path.join(tempfile.mkdtemp(dir=where), "ledger.db"), bulk=True)
    conn.execute("PRAGMA journal_mode=WAL")
    for sql in LEDGER_TABLE.create("sqlite"):
        conn.execute(sql)
    insert = LEDGER_TABLE.insert("sqlite")
    started = time.perf_counter()
    for k in range(0, len(rows), batch_size):
        with transaction(conn):
            conn.executemany(insert, [adapt(r) for r in rows[k : k + batch_size]])
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

    class UtcText(sa.types.TypeDecorator):
        impl, cache_ok = sa.Text, True

        def process_bind_param(self, value: Any, dialect: Any) -> Any:
            return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")

    types = {"text": sa.Text, "int": sa.Integer, "bigint": sa.BigInteger, "bool": sa.Boolean, "float": sa.Float,
             "decimal": ExactDecimal, "timestamp": UtcText}  # fmt: skip
    meta = sa.MetaData()
    table = sa.Table(
        LEDGER_TABLE.name,
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *(sa.Column(c.name, types[c.type], nullable=not c.not_null) for c in LEDGER_TABLE.columns),
    )
    for name, cols in LEDGER_TABLE.indexes:
        sa.Index(name, *(table.c[c] for c in cols))
    path = os.path.join(tempfile.mkdtemp(dir=where), "ledger.db")
    engine = sa.create_engine(f"sqlite:///{path}")

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


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    where = sys.argv[2] if len(sys.argv) > 2 else tempfile.gettempdir()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"SQLite {sqlite3.sqlite_version}, {n} rows into {where}")  # fmt: skip
    work = calls(n)
    builder = LedgerSink.__new__(LedgerSink)
    builder.service_name = "bench"
    rows = [builder._row(c) for c in work]
    for batch in (500, 2000):
        print(f"batch {batch:>5}: LedgerSink on_call -> committed {sink_ingest(work, where, batch):>9,.0f} rows/s")
        ours = write_only(rows, where, batch)
        print(f"batch {batch:>5}: write only, sqlite3 executemany {ours:>9,.0f} rows/s")
        core = sqlalchemy_core(rows, where, batch)
        if core is not None:
            print(f"batch {batch:>5}: write only, SQLAlchemy Core       {core:>9,.0f} rows/s ({core / ours:.2f}x)")


if __name__ == "__main__":
    main()
