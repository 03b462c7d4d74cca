"""Tags on a real PostgreSQL ledger: a version-1 ledger (no `tags` column) is migrated when spendmeter opens it,
by one of several processes starting together, and spend by tag is summed exactly there."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from spendmeter.analytics.source import LedgerSource
from spendmeter.analytics.tags import by_tag, tag_names
from spendmeter.call import Attribution, Call, Cost
from spendmeter.sinks.ledger import COLUMN_NAMES, LEDGER_TABLE, SCHEMA_VERSION, TABLE, LedgerSink

TAGGED = [("alice", (("team", "payments"), ("tenant", "acme")), "0.125"),
          ("bob", (("team", "payments"),), "0.5"), ("carol", (("team", "search"),), "0.0625"), ("dave", (), "1")]


@pytest.fixture
def v1_ledger(postgres_dsn: str) -> Iterator[str]:
    """A database of its own holding a ledger as spendmeter 0.1 created it (schema version 1), one row in it."""
    name = f"tags_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    dsn = postgres_dsn.rsplit("/", 1)[0] + f"/{name}"
    v1 = LEDGER_TABLE.columns[: COLUMN_NAMES.index("tags")]  # the columns before version 2 added `tags`
    columns = ", ".join(c.render("postgresql") for c in v1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {TABLE} (id BIGSERIAL PRIMARY KEY, {columns})")
        conn.execute("CREATE TABLE spendmeter_schema_version (component TEXT NOT NULL, version INTEGER NOT NULL, "
                     "PRIMARY KEY (component))")
        conn.execute("INSERT INTO spendmeter_schema_version VALUES ('ledger', 1)")
        conn.execute(f"INSERT INTO {TABLE} (started_at, provider, operation, model, user_id, stream, batch, status, "
                     "attempts, input_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, "
                     "output_tokens, reasoning_tokens, usage_source, cost_total_usd) VALUES (now(), 'openai', "
                     "'chat', 'gpt-4o-mini', 'old-user', false, false, 'ok', 1, 10, 0, 0, 0, 5, 0, 'reported', 2)")
    yield dsn
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _open_and_close(dsn: str) -> None:
    LedgerSink(dsn).close()


def _call(user: str, tags: tuple[tuple[str, str], ...], usd: str) -> Call:
    call = Call("openai", "chat", "gpt-4o-mini", Attribution(user=user, tags=tags))
    call.cost = Cost(Decimal(usd), Decimal(0), Decimal(0), Decimal(0), Decimal(usd), "test", "gpt-4o-mini")
    return call


def test_a_version_1_postgres_ledger_is_migrated_once_by_concurrent_openers(v1_ledger: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open_and_close, args=(v1_ledger,)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 4  # none failed on a column another had just added
    sink = LedgerSink(v1_ledger)
    for user, tags, usd in TAGGED:
        sink.on_call(_call(user, tags, usd))
    sink.close()
    with psycopg.connect(v1_ledger) as conn:
        assert conn.execute("SELECT version FROM spendmeter_schema_version").fetchall() == [(SCHEMA_VERSION,)]
        names = [r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE "
                                             "table_name = %s ORDER BY ordinal_position", (TABLE,))]
        assert names[1:] == list(COLUMN_NAMES)
        assert conn.execute(f"SELECT tags FROM {TABLE} WHERE user_id = 'old-user'").fetchone() == (None,)
    src = LedgerSource.open(v1_ledger)
    try:
        team = {g.key["team"]: (g.totals.cost, g.totals.calls) for g in by_tag(src, "team")}
        assert team == {"payments": (Decimal("0.625"), 2), "search": (Decimal("0.0625"), 1),
                        "unknown": (Decimal("3"), 2)}  # dave and the row from before the migration
        assert [g.key["tenant"] for g in by_tag(src, "tenant")] == ["unknown", "acme"]
        assert tag_names(src) == ["team", "tenant"]
    finally:
        src.close()
