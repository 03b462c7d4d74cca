"""`spendmeter.storage.rows`: the compiled per-table path stores exactly what the value-by-value path stores
(storable values, the SQLite adapter's text for decimals and integer microseconds for timestamps), for rows of
every shape."""

from __future__ import annotations

import calendar
import math
import random
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from spendmeter.sinks.ledger import LEDGER_TABLE
from spendmeter.storage import Column, Table
from spendmeter.storage.rows import MAX_TEXT, _compile, encoder, sqlite_null, storable_row
from spendmeter.storage.schema import from_micros, micros

THINGS = Table(
    "things",
    (
        Column("at", "timestamp", not_null=True),
        Column("name", "text"),
        Column("n", "bigint", not_null=True),
        Column("ok", "bool", not_null=True),
        Column("usd", "decimal"),
        Column("secs", "float"),
        Column("note", "text"),
    ),
)


class Money(Decimal):
    pass


class Stamp(datetime):
    pass


T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
# Per column type: values of the type the column holds (the compiled path), then others (the general path).
COMMON: dict[str, list[Any]] = {
    "timestamp": [T0, T0.replace(microsecond=0), T0.astimezone(timezone(timedelta(hours=-7))),
                  datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30))), None],
    "text": ["gpt-4o-mini", "", "é ✓ 漢字", "y" * 90, None],
    "int": [0, 1, -5, 2**63 - 1, -(2**63 - 1)],
    "bool": [True, False],
    "decimal": [Decimal("0.00000015"), Decimal("1.5E-7"), Decimal("0E-8"), Decimal("-0.000"), Decimal("1E+2"),
                Decimal("123.4500"), Decimal(0), Decimal("NaN"), Decimal("Infinity"), Decimal("-1E-30"), None],
    "float": [0.0, 1.0, -2.5, math.inf, math.nan, None],
}  # fmt: skip
COMMON["bigint"] = COMMON["int"]
ODD: dict[str, list[Any]] = {
    "timestamp": [Stamp(2025, 1, 2, tzinfo=UTC), "2026-01-01T00:00:00+00:00", 7],
    "text": ["nul\x00byte", "x" * (MAX_TEXT + 1), "y" * 3000, 42, 2**70, True, 1.5, Decimal("1.5")],
    "int": [2**63, -(2**70), True, None, 3.0, "12"],
    "bool": [None, 1, 0],
    "decimal": [Money("0.5"), "0.1", 0.25],
    "float": [3, "1.0"],
}
ODD["bigint"] = ODD["int"]


def random_rows(table: Table, n: int, seed: int = 7) -> list[tuple[Any, ...]]:
    """Half the rows of common values only, half with an odd value in about one column in ten."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        odd = 0.1 if i % 2 else 0.0
        rows.append(tuple(rnd.choice(ODD[c.type] if rnd.random() < odd else COMMON[c.type]) for c in table.columns))
    return rows


def general_sqlite(table: Table, row: tuple[Any, ...]) -> list[Any]:
    """What the ledger wrote before: storable values, then the adapter; None and bools as they are."""
    adapt = table.adapter("sqlite")
    assert adapt is not None
    return list(adapt(storable_row(row)))


def stored(table: Table, params: list[Any]) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(":memory:")
    try:
        for sql in table.create("sqlite"):
            conn.execute(sql.replace(" NOT NULL", ""))  # store what NOT NULL would refuse, to compare it
        for p in params:
            try:
                conn.execute(table.insert("sqlite"), p)
            except sqlite3.Error as exc:  # a value sqlite3 cannot bind: the same error both ways
                conn.execute(f"INSERT INTO {table.name} ({table.columns[1].name}) VALUES (?)", (type(exc).__name__,))
        names = ", ".join(f"{c}, typeof({c})" for c in table.column_names)
        return conn.execute(f"SELECT {names} FROM {table.name} ORDER BY id").fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("table", [THINGS, LEDGER_TABLE], ids=["things", "ledger"])
def test_sqlite_stores_what_the_value_by_value_path_stores(table: Table) -> None:
    rows = random_rows(table, 3000)
    encoded = list(encoder(table, "sqlite")(rows))
    assert stored(table, encoded) == stored(table, [general_sqlite(table, r) for r in rows])


def test_rows_of_common_values_take_the_compiled_path() -> None:
    compiled = _compile(LEDGER_TABLE, "sqlite")
    for row in random_rows(LEDGER_TABLE, 400)[::2]:
        compiled(row)  # raises for a row it leaves to the value-by-value path


def test_the_common_row_is_bound_cheaply_and_exactly() -> None:
    (params,) = encoder(THINGS, "sqlite")([(T0, "a", 2**40, True, Decimal("1E-9"), 0.5, None)])
    assert params[:6] == (1772366400123456, "a", 2**40, 1, "0.000000001", 0.5)
    assert type(params[3]) is int
    null = params[6]
    assert null is sqlite_null() and (null is None or math.isnan(null))


def test_postgresql_rows_are_made_storable_and_otherwise_left_alone() -> None:
    encode = encoder(THINGS, "postgresql")
    rows = random_rows(THINGS, 2000)
    encoded = list(encode(rows))
    assert encoded == [storable_row(r) for r in rows]
    good = (T0, "a", 1, True, Decimal("0.1"), None, None)
    assert next(encode([good])) is good
    assert next(encode([(T0, "a\x00", 2**64, True, None, None, "z" * 5000)]))[1:3] == ("a\ufffd", 2**63 - 1)


def test_micros_is_exact_both_ways_over_the_whole_range() -> None:
    rnd = random.Random(3)
    for _ in range(5000):
        at = datetime(1, 1, 1, tzinfo=UTC) + timedelta(microseconds=rnd.randrange(0, 10**17 * 3))
        n = micros(at)
        assert type(n) is int and from_micros(n) == at
        assert n == calendar.timegm(at.utctimetuple()) * 10**6 + at.microsecond  # integer arithmetic, no float
    assert micros(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert micros(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == -1


def test_timestamps_in_every_zone_are_utc_microseconds() -> None:
    encode = encoder(Table("t", (Column("at", "timestamp"), Column("end", "timestamp"))), "sqlite")
    rnd = random.Random(9)
    at = datetime(2026, 12, 31, 23, 58, 59, tzinfo=UTC)
    rows, zones = [], [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    for _ in range(3000):
        at += timedelta(microseconds=rnd.choice([1, 999, 250_000, 1_000_000, 59_999_999, 3_600_000_000]))
        rows.append((at.astimezone(rnd.choice(zones)), at + timedelta(seconds=rnd.randrange(0, 90))))
    rows.append((datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)))
    expected = [tuple((v - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) for v in r) for r in rows]
    assert list(encode(rows)) == expected


def test_decimal_text_is_plain_notation_like_format_f() -> None:
    rnd = random.Random(5)
    encode = encoder(Table("d", (Column("usd", "decimal"),)), "sqlite")
    values = [Decimal(rnd.randrange(-(10**12), 10**12)).scaleb(rnd.randrange(-30, 8)) for _ in range(5000)]
    assert [p[0] for p in encode((v,) for v in values)] == [format(v, "f") for v in values]
