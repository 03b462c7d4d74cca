"""Rows on their way into a table: every value made storable, then the parameters the driver writes.

`storable_row(row)`: the row with every value a database accepts (NUL bytes as U+FFFD, text cut at
`MAX_TEXT` with a marker, integers clamped to a BIGINT). `encoder(table, dialect)` returns
`encode(rows) -> params` (an iterator), the batch as written: each row made storable, then, for SQLite,
adapted (`Table.adapter`: decimals as text, timestamps as integer microseconds) and made cheap to bind:

- `None` is bound as a float NaN, which SQLite stores as NULL (checked once per process against the SQLite
  library in use; `None` is kept if it does not). Python's sqlite3 sends `None` and `bool` through its
  adapter registry, about 0.7 µs per value against 0.05 for a float: ~8 µs of a ledger row's 44 values.
- `True`/`False` are bound as `1`/`0`, the INTEGER sqlite3 stores for them.

The stored values are the same either way (tests/unit/test_storage_rows.py compares them). The common row
goes through a function compiled once per table from its column types, one expression per column with no
loop and no call per value; a row holding any value of another type (a `Decimal` subclass, a string in an
integer column, text to cut) takes the general path, value by value, which defines the result.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from spendmeter.storage.schema import EPOCH, MICROSECOND, Dialect, Row, Table

MAX_TEXT = 4096  # longer text (a 10 KB user id, a huge error type) is cut, with a marker: no row refused for it
BIGINT = 2**63 - 1
CUT = "...[cut]"

Encode = Callable[[Iterable[Row]], Iterator[Sequence[Any]]]


def storable_row(row: Row) -> Row:
    """The row with every value a database accepts: NUL bytes (PostgreSQL text refuses them) as U+FFFD,
    text longer than MAX_TEXT cut, integers beyond a BIGINT (a response claiming 10**19 tokens) clamped."""
    out: list[Any] | None = None
    for i, v in enumerate(row):
        t = type(v)
        if t is str:
            if "\x00" not in v and len(v) <= MAX_TEXT:
                continue
            fixed: Any = v.replace("\x00", "\ufffd")
            if len(fixed) > MAX_TEXT:
                fixed = fixed[: MAX_TEXT - len(CUT)] + CUT
        elif t is int:
            if -BIGINT <= v <= BIGINT:
                continue
            fixed = BIGINT if v > 0 else -BIGINT
        else:
            continue
        if out is None:
            out = list(row)
        out[i] = fixed
    return row if out is None else tuple(out)


_null: Any = ...  # what None is bound as on SQLite, decided on first use


def sqlite_null() -> Any:
    """NaN when this SQLite stores a bound NaN as NULL (it has for as long as Python has shipped it), else None."""
    global _null
    if _null is ...:
        nan = math.nan
        conn = sqlite3.connect(":memory:")
        try:
            stored = conn.execute("SELECT ? IS NULL, typeof(?)", (nan, nan)).fetchone()
        finally:
            conn.close()
        _null = nan if tuple(stored) == (1, "null") else None
    return _null


class _Other(Exception):
    """A value the compiled path does not handle: the row takes the general path."""


def _other() -> Any:
    raise _Other


# Per portable column type: (SQLite: the value bound; PostgreSQL: the value's test). {v} is the value, N what
# None is bound as; a value of any other type raises _Other (O()).
_SQLITE = {
    "text": "{v} if {v}.__class__ is str else N if {v} is None else O()",
    "int": "{v} if {v}.__class__ is int and -B <= {v} <= B else O()",
    "bigint": "{v} if {v}.__class__ is int and -B <= {v} <= B else O()",
    "bool": "1 if {v} is True else 0 if {v} is False else O()",
    "float": "{v} if {v}.__class__ is float else N if {v} is None else O()",
    # str() is plain notation unless it says otherwise ("1.5E-7"): then format(v, "f"), as the adapter does
    "decimal": '(s if "E" not in (s := str({v})) else format({v}, "f")) if {v}.__class__ is D else N if {v} is None '
    "else O()",
    # an aware datetime in any zone; a naive one raises TypeError here (the general path: local time, as astimezone)
    "timestamp": "({v} - E) // U if {v}.__class__ is datetime else N if {v} is None else O()",
}
_POSTGRES = {
    "text": "{v}.__class__ is str or {v} is None",
    "int": "{v}.__class__ is int and -B <= {v} <= B",
    "bigint": "{v}.__class__ is int and -B <= {v} <= B",
    "bool": "{v}.__class__ is bool",
    "float": "{v}.__class__ is float or {v} is None",
    "decimal": "{v}.__class__ is D or {v} is None",
    "timestamp": "{v}.__class__ is datetime or {v} is None",
}


def _compile(table: Table, dialect: Dialect) -> Callable[[Row], Sequence[Any]]:
    """The common row's parameters: one expression per column, then one check of all the text at once (if the
    text values together are at most MAX_TEXT long and hold no NUL, so does each)."""
    names = [f"a{i}" for i in range(len(table.columns))]
    texts = [n for n, c in zip(names, table.columns, strict=True) if c.type == "text"]
    rules = _SQLITE if dialect == "sqlite" else _POSTGRES
    exprs = [rules[c.type].format(v=n) for n, c in zip(names, table.columns, strict=True)]
    text_check = (
        f'    t = "".join(filter(None, ({", ".join(texts)},)))\n    if len(t) > M or "\\x00" in t:\n        O()\n'
        if texts else ""
    )  # fmt: skip
    if dialect == "sqlite":
        body = f"    out = ({', '.join(f'({e})' for e in exprs)},)\n{text_check}    return out\n"
    else:
        body = f"    if not ({' and '.join(f'({e})' for e in exprs)}):\n        O()\n{text_check}    return r\n"
    source = f"def encode_row(r):\n    {', '.join(names)}, = r\n{body}"
    scope: dict[str, Any] = {"N": sqlite_null() if dialect == "sqlite" else None, "B": BIGINT, "M": MAX_TEXT,
                             "D": Decimal, "E": EPOCH, "U": MICROSECOND, "O": _other, "datetime": datetime}  # fmt: skip
    exec(compile(source, f"<spendmeter.storage.rows: {table.name} {dialect}>", "exec"), scope)
    return scope["encode_row"]  # type: ignore[no-any-return]


def encoder(table: Table, dialect: Dialect) -> Encode:
    """`encode(rows)`: the parameters each row of a batch is written with (see the module docstring), one row
    at a time as the driver asks for them: each is freed once bound, so a 10 000-row batch is never held
    twice in memory and leaves nothing for the garbage collector to trace."""
    general = _general(table, dialect)
    compiled = _compile(table, dialect)

    def encode(rows: Iterable[Row]) -> Iterator[Sequence[Any]]:
        for row in rows:
            try:
                params = compiled(row)
            except (_Other, TypeError, ValueError):  # TypeError: a comparison; ValueError: a row of another length
                params = general(row)
            yield params

    return encode


def _general(table: Table, dialect: Dialect) -> Callable[[Row], Sequence[Any]]:
    """Value by value: what the compiled path must give."""
    if dialect != "sqlite":
        return storable_row
    adapt = table.adapter(dialect)
    null = sqlite_null()

    def general(row: Row) -> Sequence[Any]:
        values = storable_row(row)
        if adapt is not None:
            values = adapt(values)
        return tuple(null if v is None else int(v) if v.__class__ is bool else v for v in values)

    return general
