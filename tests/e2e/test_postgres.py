"""The scale path on a real PostgreSQL: budget spend shared by processes and hosts, and the per-call ledger.

PostgreSQL comes from the session fixture `postgres_dsn` (Debian package, free port, trust auth); under
CI=true a missing server fails these tests instead of skipping them.
"""

from __future__ import annotations

import multiprocessing
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from prometheus_client import CollectorRegistry

import spendmeter
from spendmeter.budgets import BudgetEngine
from spendmeter.budgets.config import parse_budgets
from spendmeter.budgets.store import NANO_PER_USD, PostgresStore, from_nano, open_store
from spendmeter.call import Attribution, Call, Cost
from spendmeter.errors import ConfigError
from spendmeter.testing import ProviderServer
from spendmeter.testing.scenarios import LOCAL_PROVIDERS

PROCESSES, ADDS = 4, 300
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _adder(dsn: str, budget: str, worker: int, adds: int) -> None:
    """In a spawned process: its own store, its own connections; every add also hits a shared key."""
    store = PostgresStore(dsn, max_connections=2)
    for i in range(adds):
        # 1 nano-USD + i: amounts differ per add, so a lost or doubled update changes the total.
        store.add([((budget, "shared", "2025-06-01"), 1 + i), ((budget, f"w{worker}", "2025-06-01"), 7)])
    store.close()


def test_spend_store_is_exact_under_concurrent_processes(postgres_dsn):
    budget = f"procs-{uuid.uuid4().hex[:8]}"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_adder, args=(postgres_dsn, budget, w, ADDS)) for w in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * PROCESSES

    store = PostgresStore(postgres_dsn)
    try:
        assert store.get(budget, "shared", "2025-06-01") == PROCESSES * sum(1 + i for i in range(ADDS))
        assert store.top(budget, "2025-06-01", 1, 10)[0][0] == "shared"
        assert store.count_at_least(budget, "2025-06-01", 7 * ADDS) == PROCESSES + 1
        assert all(store.get(budget, f"w{w}", "2025-06-01") == 7 * ADDS for w in range(PROCESSES))
        assert store.prune(budget, "2025-06-02") == PROCESSES + 1
        assert store.get(budget, "shared", "2025-06-01") == 0
    finally:
        store.close()


def test_spend_store_threads_share_a_small_pool(postgres_dsn):
    from concurrent.futures import ThreadPoolExecutor

    budget = f"threads-{uuid.uuid4().hex[:8]}"
    store = PostgresStore(postgres_dsn, max_connections=3)
    try:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: store.add([((budget, "k", "p"), i)]), range(400)))
        assert store.get(budget, "k", "p") == sum(range(400))
        assert store.pool.get_stats()["pool_size"] <= 3
    finally:
        store.close()


def test_open_store_picks_postgres_for_a_dsn_and_env_reference(postgres_dsn, monkeypatch):
    monkeypatch.setenv("SPENDMETER_TEST_SPEND_DSN", postgres_dsn)
    for target in (postgres_dsn, "env:SPENDMETER_TEST_SPEND_DSN"):
        store = open_store(target)
        try:
            assert isinstance(store, PostgresStore)
            assert store.get("nothing", "here", "yet") == 0
        finally:
            store.close()
    with pytest.raises(ConfigError, match="SPENDMETER_TEST_UNSET_DSN"):
        open_store("env:SPENDMETER_TEST_UNSET_DSN")
    unreachable = postgres_dsn.rsplit(":", 1)[0] + ":1/spendmeter"
    with pytest.raises(ConfigError, match="cannot connect"):
        open_store(unreachable)


def test_postgres_stores_use_a_psycopg_pool(postgres_dsn):
    import psycopg_pool

    from spendmeter.sinks.ledger import LedgerSink

    store = PostgresStore(postgres_dsn, max_connections=3)
    sink = LedgerSink(postgres_dsn)
    try:
        assert isinstance(store.pool, psycopg_pool.ConnectionPool)
        assert isinstance(sink.backend.db.pool, psycopg_pool.ConnectionPool)
        assert store.pool.max_size == 3 and store.pool is not sink.backend.db.pool
        assert store.get("nothing", "here", "yet") == 0
    finally:
        store.close()
        sink.close()


def test_a_forked_child_opens_its_own_pool_and_leaves_the_parents_alone(postgres_dsn):
    import os

    budget = f"fork-{uuid.uuid4().hex[:8]}"
    store = PostgresStore(postgres_dsn, max_connections=2)
    try:
        store.add([((budget, "k", "p"), 1)])  # the parent's pool has a live connection now
        parents = store.pool
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                store.add([((budget, "k", "p"), 10)])
                code = 0 if store.pool is not parents and store.get(budget, "k", "p") == 11 else 2
                store.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert store.pool is parents
        store.add([((budget, "k", "p"), 100)])  # the parent's connections survived the child
        assert store.get(budget, "k", "p") == 111
    finally:
        store.close()


def test_a_password_never_shows_in_logs_or_reprs(postgres_dsn, caplog):
    """Trust auth accepts any password: a DSN with one connects, and nothing we print may hold it."""
    import logging

    from spendmeter.sinks.ledger import LedgerSink

    secret = "s3cretpw"
    dsn = postgres_dsn.replace("postgres@", f"postgres:{secret}@", 1) + f"?password={secret}"
    caplog.set_level(logging.DEBUG)  # every logger: ours, psycopg's, the pool's
    store, sink = PostgresStore(dsn, max_connections=2), LedgerSink(dsn, service_name="secret-test")
    try:
        budget = f"secret-{uuid.uuid4().hex[:8]}"
        store.add([((budget, "k", "p"), 1)])
        sink.on_call(_priced_call("u", "0.001"))
        assert sink.flush(10)
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:  # a server restart, as the pools see it
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")  # fmt: skip
        assert store.get(budget, "k", "p") == 1  # retried on a fresh connection
        sink.on_call(_priced_call("u", "0.001"))
        assert sink.flush(10)
        shown = [repr(store), repr(sink), repr(sink.backend), repr(sink.backend.db), repr(sink.target)]
        assert all("postgres:***@" in s for s in shown), shown
    finally:
        store.close()
        sink.close()
    assert not any(secret in s for s in shown)
    leaked = [r for r in caplog.records if secret in r.getMessage() or secret in str(r.exc_info) or secret in
              str(r.args)]  # fmt: skip
    assert not leaked, [r.getMessage() for r in leaked]
    assert sink.written + sink.failed_rows == 2


def _budget_config(name: str, store: str = "memory") -> object:
    return parse_budgets(
        {
            "store": store,
            "budgets": [
                {"name": name, "scope": "user", "period": "day", "limit_usd": "0.002", "action": "block"},
            ],
        }
    )


def _priced_call(user: str, usd: str) -> Call:
    call = Call("openai", "chat", "gpt-4o-mini", Attribution(user=user))
    call.cost = Cost(Decimal(usd), Decimal(0), Decimal(0), Decimal(0), Decimal(usd), "test", "gpt-4o-mini")
    return call


def test_budget_blocks_across_two_hosts(postgres_dsn):
    name = f"hosts-{uuid.uuid4().hex[:8]}"
    config = _budget_config(name)
    host_a = BudgetEngine(config, clock=lambda: NOW, store=PostgresStore(postgres_dsn))
    host_b = BudgetEngine(config, clock=lambda: NOW, store=PostgresStore(postgres_dsn))
    try:
        for _ in range(2):
            host_a.on_call(_priced_call("erin", "0.0009"))
        host_a.flush()  # spend is written by a background thread (issue #12): wait for it, as time would
        host_b.check(_priced_call("erin", "0"))  # $0.0018 < $0.002: still room
        host_b.on_call(_priced_call("erin", "0.0009"))  # $0.0027 now, spent on host B
        host_b.flush()
        for engine in (host_a, host_b):
            with pytest.raises(spendmeter.BudgetExceeded) as info:
                engine.check(_priced_call("erin", "0"))
            assert info.value.key == "erin"
        host_a.check(_priced_call("frank", "0"))  # other users are not affected
        assert host_a.spent(name, "erin") == Decimal("0.0027") == host_b.spent(name, "erin")
    finally:
        host_a.close()
        host_b.close()


def test_budgets_file_selects_the_postgres_store(postgres_dsn):
    engine = BudgetEngine(_budget_config(f"file-{uuid.uuid4().hex[:8]}", store=postgres_dsn), clock=lambda: NOW)
    try:
        assert isinstance(engine.store, PostgresStore)
    finally:
        engine.close()


# ----------------------------------------------------------------------------------------- ledger

OAI_HEADERS = {"x-fake-usage": "input=2000,output=1000"}  # gpt-4o-mini: 2000 x 0.15 + 1000 x 0.60 per 1M
ANT_HEADERS = {"x-fake-usage": "input=20,cache_write=163,cache_write_1h=1000,cached=0,output=300"}
MSG = [{"role": "user", "content": "Where is my refund?"}]


class _Collect:
    def __init__(self) -> None:
        self.calls: list[Call] = []

    def on_call(self, call: Call) -> None:
        self.calls.append(call)


def test_ledger_records_real_sdk_calls_exactly(postgres_dsn):
    import anthropic
    import openai

    service = f"e2e-ledger-{uuid.uuid4().hex[:8]}"
    seen = _Collect()
    with ProviderServer() as provider:
        spendmeter.add_sink(seen)  # before init(): it must survive it
        spendmeter.init(serve_metrics=False, registry=CollectorRegistry(), ledger=postgres_dsn,
                        usage_hosts=("127.0.0.1",), providers=LOCAL_PROVIDERS, service_name=service)  # fmt: skip
        try:
            oai = openai.OpenAI(base_url=provider.openai_base_url, api_key="sk-test", max_retries=0)
            ant = anthropic.Anthropic(base_url=provider.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
            with spendmeter.attribute(user="gina", feature="refunds", agent="router", conversation="c-7"):
                for _ in range(3):
                    oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=OAI_HEADERS)
                list(oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True,
                                                 extra_headers=OAI_HEADERS))  # fmt: skip
            with spendmeter.attribute(user="hugo", feature="contracts"):
                ant.messages.create(model="claude-3-5-sonnet-20240620", max_tokens=400, messages=MSG,
                                    extra_headers=ANT_HEADERS)  # fmt: skip
        finally:
            spendmeter.shutdown()  # flushes the ledger
            spendmeter.remove_sink(seen)

    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute(
            "SELECT provider, model, user_id, feature, agent, conversation, stream, status, usage_source,"
            " input_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, output_tokens,"
            " cost_total_usd, cost_input_usd + cost_cache_read_usd + cost_cache_write_usd + cost_output_usd,"
            " started_at, ended_at FROM spendmeter_ledger WHERE service = %s ORDER BY id",
            (service,),
        ).fetchall()
        total = conn.execute(
            "SELECT sum(cost_total_usd) FROM spendmeter_ledger WHERE service = %s AND user_id = 'gina'", (service,)
        ).fetchone()[0]
        version = conn.execute("SELECT version FROM spendmeter_schema_version WHERE component = 'ledger'").fetchone()

    assert len(rows) == len(seen.calls) == 5
    for row, call in zip(rows, seen.calls, strict=True):
        u = call.usage
        assert row[:2] == (call.provider, call.model)
        assert row[9:14] == (u.input, u.cache_read, u.cache_write_5m, u.cache_write_1h, u.output)
        assert row[14] == call.cost.total and row[15] == call.cost.total  # NUMERIC: the very Decimal
        assert row[16] == call.started_at and row[17] == call.ended_at
    assert rows[0][2:9] == ("gina", "refunds", "router", "c-7", False, "ok", "reported")
    assert rows[3][6] is True and rows[3][9] == 2000  # the stream, usage via include_usage
    assert rows[4][:4] == ("anthropic", "claude-3-5-sonnet-20240620", "hugo", "contracts")
    assert rows[4][11:13] == (163, 1000)  # 5-minute and 1-hour cache writes kept apart
    assert total == 4 * (Decimal(2000) * Decimal("0.15") + Decimal(1000) * Decimal("0.60")) / 1_000_000
    from spendmeter.sinks.ledger import SCHEMA_VERSION

    assert version == (SCHEMA_VERSION,)  # a fresh ledger is created at the current schema


def test_ledger_survives_a_restart_and_a_second_writer(postgres_dsn):
    from spendmeter.sinks.ledger import LedgerSink

    service = f"e2e-two-{uuid.uuid4().hex[:8]}"
    sinks = [LedgerSink(postgres_dsn, service_name=service) for _ in range(2)]
    amount = Decimal("0.000000037500")  # one cached gpt-4o-mini token: a float would not keep it
    for i in range(200):
        sinks[i % 2].on_call(_priced_call(f"u{i % 5}", str(amount)))
    for sink in sinks:
        sink.close()
    with psycopg.connect(postgres_dsn) as conn:
        count, total = conn.execute(
            "SELECT count(*), sum(cost_total_usd) FROM spendmeter_ledger WHERE service = %s", (service,)
        ).fetchone()
    assert (count, total) == (200, 200 * amount)
    assert from_nano(int(total * NANO_PER_USD)) == Decimal("0.0000075")


def _doc_queries(lang: str) -> list[str]:
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "ledger.md").read_text()
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_documented_postgres_queries_run_and_add_up(postgres_dsn):
    from spendmeter.sinks.ledger import LedgerSink

    queries = _doc_queries("sql")
    assert len(queries) >= 3
    model = f"doc-model-{uuid.uuid4().hex[:8]}"
    call = _priced_call("ivy", "0")
    call.request_model, call.attribution = model, Attribution(user="ivy", feature="doc-feature", conversation="c-doc")
    call.started_at = datetime.now(UTC)
    call.usage.input, call.usage.cache_read, call.usage.source = 1000, 4000, "reported"
    # 1000 x 0.15 + 4000 x 0.075 per 1M: uncached, the cache reads would have cost 4000 x 0.15 per 1M.
    call.cost = Cost(Decimal("0.00015"), Decimal("0.0003"), Decimal(0), Decimal(0), Decimal("0.00045"), "t", model)
    sink = LedgerSink(postgres_dsn)
    sink.on_call(call)
    sink.close()
    with psycopg.connect(postgres_dsn) as conn:
        results = [conn.execute(q).fetchall() for q in queries]
    by_user_day, by_feature, savings = results[0], results[1], results[2]
    assert any(r[1] == "ivy" and r[2] == Decimal("0.00045") for r in by_user_day)
    assert any(r[0] == "doc-feature" and r[1] == Decimal("0.00045") for r in by_feature)
    assert [r[1:] for r in savings if r[0] == model] == [(4000, Decimal("0.0003"))]
