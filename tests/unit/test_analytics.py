"""The ledger queries on a real SQLite ledger written by the real LedgerSink: every grouping, filter and
window checked against sums computed here from the same hand-made calls, to the last decimal place.

`check_all()` is reused on PostgreSQL by tests/e2e/test_analytics_postgres.py."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from random import Random

import pytest

from spendmeter.analytics import LedgerSource, LedgerUnavailable, Window, calls, grouped, total
from spendmeter.analytics.periods import BadInput, window
from spendmeter.analytics.views import money
from spendmeter.call import Attribution, Call, Cost, Unpriced, Usage
from spendmeter.sinks.ledger import COLUMN_NAMES, LEDGER_TABLE, TABLE, LedgerSink, open_backend
from spendmeter.storage.schema import from_micros

T0 = datetime(2025, 6, 1, 22, 0, tzinfo=UTC)  # the calls straddle UTC midnights
USERS = ("alice", "bob", "carol", None)
FEATURES = ("support", "search", None)
MODELS = (("openai", "gpt-4o-mini"), ("openai", "gpt-4.1"), ("anthropic", "claude-sonnet-4-5"))
AGENTS = ("router", "coder")


def make_calls(n: int = 120, seed: int = 3) -> list[Call]:
    rnd = Random(seed)
    out = []
    for i in range(n):
        provider, model = MODELS[i % len(MODELS)]
        who = Attribution(user=USERS[i % 4], feature=FEATURES[i % 3], agent=AGENTS[i % 2],
                          conversation=None if i % 7 == 0 else f"conv-{i % 11}")
        call = Call(provider=provider, operation="chat", request_model=model, attribution=who,
                    started_at=T0 + timedelta(minutes=37 * i), stream=i % 5 == 0)
        call.usage = Usage(input=rnd.randint(1, 5000), cache_read=rnd.randint(0, 2048), cache_write_5m=i % 3,
                           cache_write_1h=i % 2, output=rnd.randint(1, 900), reasoning=i % 4, source="reported")
        call.status = "blocked" if i % 17 == 0 else "error" if i % 13 == 0 else "ok"
        call.attempts = 2 if i % 9 == 0 else 1
        if i % 19 == 0:
            call.cost = Unpriced("no price for this model")
        elif call.status != "blocked":
            # Amounts a float cannot hold, with up to 12 decimal places.
            parts = [Decimal(rnd.randint(1, 10**9)) / 10**12 for _ in range(4)]
            call.cost = Cost(*parts, total=sum(parts, Decimal(0)), source="genai-prices test", price_entry=model)
        call.ended_at = call.started_at + timedelta(seconds=1)
        call.end_reason = "completed"
        out.append(call)
    return out


def write_ledger(target: str, calls_: list[Call]) -> None:
    sink = LedgerSink(target)
    for call in calls_:
        sink.on_call(call)
    sink.close()


def _key(call: Call, dim: str) -> str:
    who = call.attribution
    value = {"user": who.user, "feature": who.feature, "agent": who.agent, "conversation": who.conversation,
             "model": call.model, "provider": call.provider, "day": call.started_at.date().isoformat()}[dim]
    return "unknown" if value is None else value


def expected(calls_: list[Call], by: tuple[str, ...], keep: Callable[[Call], bool] = lambda c: True):
    cost: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    tokens: dict[tuple[str, ...], int] = defaultdict(int)
    count: dict[tuple[str, ...], int] = defaultdict(int)
    convs: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for c in calls_:
        if not keep(c):
            continue
        k = tuple(_key(c, d) for d in by)
        cost[k] += c.cost_usd
        tokens[k] += c.usage.total
        count[k] += 1
        if c.attribution.conversation is not None:
            convs[k].add(c.attribution.conversation)
    return {k: (cost[k], tokens[k], count[k], len(convs[k])) for k in count}


def check_all(src: LedgerSource, calls_: list[Call]) -> None:
    for by in (("feature",), ("user",), ("model",), ("agent",), ("provider",), ("conversation",), ("day",),
               ("day", "feature")):
        got = {tuple(g.key[d] for d in by): (g.totals.cost, g.totals.tokens, g.totals.calls, g.totals.conversations)
               for g in grouped(src, by)}
        assert got == expected(calls_, by), by

    # Highest spend first, limited; ties cannot reorder (the amounts are distinct).
    top = grouped(src, ("user",), limit=2)
    want = sorted(expected(calls_, ("user",)).items(), key=lambda kv: -kv[1][0])[:2]
    assert [(g.key["user"], g.totals.cost) for g in top] == [(k[0], v[0]) for k, v in want]

    # Days in order; a window [start, end) and filters.
    days = [g.key["day"] for g in grouped(src, ("day",), order="key")]
    assert days == sorted(days) and len(days) >= 3
    w = Window(T0 + timedelta(hours=5), T0 + timedelta(hours=40))
    in_w = lambda c: w.start <= c.started_at < w.end  # noqa: E731
    got = {g.key["feature"]: g.totals.cost for g in grouped(src, ("feature",), w, {"user": "alice"})}
    want_w = expected(calls_, ("feature",), lambda c: in_w(c) and c.attribution.user == "alice")
    assert got == {k[0]: v[0] for k, v in want_w.items()}
    unknown_user = total(src, filters={"user": "unknown"})
    assert unknown_user.calls == sum(1 for c in calls_ if c.attribution.user is None)

    everything = total(src)
    assert everything.cost == sum((c.cost_usd for c in calls_), Decimal(0))
    assert everything.unpriced_calls == sum(1 for c in calls_ if isinstance(c.cost, Unpriced))
    assert everything.blocked_calls == sum(1 for c in calls_ if c.status == "blocked")
    assert everything.error_calls == sum(1 for c in calls_ if c.status == "error")
    assert everything.reasoning == sum(c.usage.reasoning for c in calls_)

    listed = calls(src, filters={"conversation": "conv-3"}, limit=1000)
    mine = [c for c in calls_ if c.attribution.conversation == "conv-3"]
    assert [r["started_at"] for r in listed] == sorted((c.started_at for c in mine), reverse=True)
    assert sum((r["cost_total_usd"] or Decimal(0) for r in listed), Decimal(0)) == sum(
        (c.cost_usd for c in mine), Decimal(0))
    assert all(r["cost_total_usd"] is None for r in listed if r["unpriced_reason"])


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[tuple[LedgerSource, list[Call]]]:
    target = f"sqlite:///{tmp_path / 'ledger.db'}"
    data = make_calls()
    write_ledger(target, data)
    src = LedgerSource.open(target)
    yield src, data
    src.close()


def test_every_grouping_is_exact_on_sqlite(sqlite_ledger: tuple[LedgerSource, list[Call]]) -> None:
    check_all(*sqlite_ledger)


def as_schema_3(path: Path) -> None:
    """The ledger at `path` as spendmeter wrote it before schema 4: TEXT columns of ISO-8601 timestamps."""
    conn = sqlite3.connect(path)
    create, *indexes = LEDGER_TABLE.create("sqlite")
    rows = conn.execute(f"SELECT id, {', '.join(COLUMN_NAMES)} FROM {TABLE}").fetchall()
    conn.execute(f"DROP TABLE {TABLE}")
    conn.execute(create.replace("_at INTEGER", "_at TEXT"))
    stamps = [1 + COLUMN_NAMES.index(c) for c in ("started_at", "ended_at")]
    for row in rows:
        values = [from_micros(v).isoformat(timespec="microseconds") if i in stamps and v is not None else v
                  for i, v in enumerate(row)]  # fmt: skip
        conn.execute(f"INSERT INTO {TABLE} (id, {', '.join(COLUMN_NAMES)}) VALUES ({', '.join('?' * len(row))})",
                     values)  # fmt: skip
    for sql in indexes:
        conn.execute(sql)
    conn.execute("UPDATE spendmeter_schema_version SET version = 3 WHERE component = 'ledger'")
    conn.commit()
    conn.close()


def test_a_schema_3_ledger_reads_the_same_before_and_after_its_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    data = make_calls()
    write_ledger(f"sqlite:///{path}", data)
    as_schema_3(path)
    src = LedgerSource.open(f"sqlite:///{path}")
    assert src.query("SELECT DISTINCT typeof(started_at) FROM spendmeter_ledger") == [("text",)]
    check_all(src, data)  # read as ISO text, by a reader newer than the file
    open_backend(f"sqlite:///{path}").close()  # a writer opens it: rebuilt with integers
    assert src.query("SELECT DISTINCT typeof(started_at) FROM spendmeter_ledger") == [("integer",)]
    check_all(src, data)
    src.close()


def test_a_missing_ledger_says_how_to_enable_one(tmp_path: Path) -> None:
    with pytest.raises(LedgerUnavailable, match="SPENDMETER_LEDGER"):
        LedgerSource.open(f"sqlite:///{tmp_path / 'nope.db'}")
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(LedgerUnavailable, match="no spendmeter_ledger table"):
        total(LedgerSource.open(str(tmp_path / "empty.db")))


def test_money_is_plain_and_exact() -> None:
    assert money(Decimal("0.000000015000")) == "0.000000015"
    assert money(Decimal("1E+1")) == "10" and money(Decimal(0)) == "0" and money(None) is None
    assert money(Decimal("123456789.123456789012345")) == "123456789.123456789012345"


def test_windows_from_user_input() -> None:
    now = datetime(2025, 6, 10, 15, 0, tzinfo=UTC)
    assert window("2025-06-01", "2025-06-30") == Window(datetime(2025, 6, 1, tzinfo=UTC),
                                                       datetime(2025, 7, 1, tzinfo=UTC))
    assert window(days=1, now=now) == Window(datetime(2025, 6, 10, tzinfo=UTC), None)
    assert window(days="7", now=now).start == datetime(2025, 6, 4, tzinfo=UTC)
    assert window("2025-06-01T12:00:00+02:00").start == datetime(2025, 6, 1, 10, tzinfo=UTC)
    for bad in ({"since": "yesterday"}, {"days": "0"}, {"since": "2025-06-01", "days": "3"},
                {"since": "2025-06-02", "until": "2025-06-01T00:00:00Z"}):
        with pytest.raises(BadInput):
            window(**bad)
