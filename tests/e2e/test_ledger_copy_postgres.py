"""The PostgreSQL ledger writes its batches with COPY: the rows it stores are the ones the INSERT it replaced
stored, value for value (text, NULLs, exact NUMERIC scales, timestamps, floats, booleans, odd strings)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from spendmeter.sinks.ledger import LEDGER_TABLE
from spendmeter.storage import parse_target
from spendmeter.storage.postgres import PostgresDatabase
from spendmeter.storage.rows import encoder

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
VALUES: dict[str, list[Any]] = {
    "timestamp": [T0, T0.replace(microsecond=0), T0.astimezone(timezone(timedelta(hours=-7))), None],
    "text": ["gpt-4o-mini", "", "tab\there", "new\nline", "back\\slash", "é ✓ 漢字", "\\N", "nul\x00byte",
             "x" * 5000, None],
    "int": [0, 1, -5, 2**31 - 1],
    "bigint": [0, 2**63 - 1, -(2**63 - 1), 2**70],
    "bool": [True, False],
    "decimal": [Decimal("0.00000015"), Decimal("1.5E-7"), Decimal("0E-8"), Decimal("-0.000"), Decimal("1E+2"),
                Decimal("123.4500"), Decimal(0), None],
    "float": [0.0, 1.0, -2.5, 0.1 + 0.2, 1e-300, None],
}
NOT_NULL = {c.name for c in LEDGER_TABLE.columns if c.not_null}
# The ledger's columns in tables of their own: the session's database is shared with the other e2e tests.
COPIED = replace(LEDGER_TABLE, name="copy_check_copied", indexes=())
INSERTED = replace(LEDGER_TABLE, name="copy_check_inserted", indexes=())


def rows(n: int) -> list[tuple[Any, ...]]:
    rnd = random.Random(11)
    return [
        tuple(rnd.choice([v for v in VALUES[c.type] if v is not None or c.name not in NOT_NULL])
              for c in LEDGER_TABLE.columns)
        for _ in range(n)
    ]


def test_copy_stores_what_insert_stored(postgres_dsn: str) -> None:
    db = PostgresDatabase(parse_target(postgres_dsn, key="ledger"), key="ledger", max_size=1)
    batch = list(encoder(LEDGER_TABLE, "postgresql")(rows(500)))
    names = ", ".join(LEDGER_TABLE.column_names)
    as_text = ", ".join(f"{c}::text" for c in LEDGER_TABLE.column_names)
    try:
        for sql in (*COPIED.create("postgresql"), *INSERTED.create("postgresql")):
            db.execute(sql)
        db.executemany(INSERTED.insert("postgresql"), batch)
        db.insert_rows(COPIED, batch)
        copied = db.query(f"SELECT {as_text} FROM {COPIED.name} ORDER BY id")
        inserted = db.query(f"SELECT {as_text} FROM {INSERTED.name} ORDER BY id")
        assert len(copied) == 500 and copied == inserted
        assert db.query(f"SELECT count(*) FROM (SELECT {names} FROM {COPIED.name} EXCEPT ALL "
                        f"SELECT {names} FROM {INSERTED.name}) d") == [(0,)]  # fmt: skip
    finally:
        db.execute(f"DROP TABLE IF EXISTS {COPIED.name}, {INSERTED.name}")
        db.close()
