"""Tags: `attribute(team=..., tenant=...)` through init() and the real SDK, into the ledger (and a version-1
ledger migrated to hold them), the spans, the cost API and `spendmeter report`, and Prometheus labels only for
the tags named in `label_tags` (capped like the other labels)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client import CollectorRegistry

import spendmeter
from spendmeter.analytics.source import LedgerSource
from spendmeter.analytics.tags import by_tag, tag_names
from spendmeter.cli import main as cli
from spendmeter.errors import ConfigError
from spendmeter.server.routes import Access, respond
from spendmeter.sinks.ledger import COLUMN_NAMES, LEDGER_TABLE, SCHEMA_VERSION, TABLE
from spendmeter.storage.schema import micros
from spendmeter.testing import CollectingSink, FlushingSpanExporter
from spendmeter.testing.scenarios import LOCAL_PROVIDERS

MSG = [{"role": "user", "content": "hi"}]
USAGE = {"x-fake-usage": "input=2000,output=1000"}
# (user, team, tenant, plan, calls)
PLAN = [("alice", "payments", "acme", "pro", 3), ("bob", "payments", "globex", None, 2), ("carol", "search", None,
        "free", 1), ("dave", None, None, None, 1)]  # fmt: skip


@pytest.fixture
def run(pipeline, tmp_path: Path):
    """init() with a SQLite ledger, a fresh registry and an in-memory span exporter; shut down after."""
    sink = CollectingSink()
    spendmeter.add_sink(sink)
    spans = FlushingSpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    registry = CollectorRegistry()

    def start(**options: object) -> dict[str, object]:
        spendmeter.init(serve_metrics=False, registry=registry, tracer_provider=provider,
                        usage_hosts=("127.0.0.1",), providers=LOCAL_PROVIDERS,
                        ledger=str(tmp_path / "ledger.db"), **options)
        return {"sink": sink, "spans": spans, "registry": registry, "ledger": tmp_path / "ledger.db"}

    yield start
    spendmeter.remove_sink(sink)
    spendmeter.shutdown()


def make_calls(oai) -> None:
    for user, team, tenant, plan, n in PLAN:
        tags = {k: v for k, v in (("team", team), ("tenant", tenant), ("plan", plan)) if v}
        with spendmeter.attribute(user=user, feature="support", **tags):
            for _ in range(n):
                oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)


def by(sink: CollectingSink, tag: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for c in sink.calls:
        key = c.attribution.tag(tag) or "unknown"
        out[key] = out.get(key, Decimal(0)) + c.cost_usd
    return out


def label_sets(registry: CollectorRegistry, name: str) -> list[dict[str, str]]:
    return [s.labels for m in registry.collect() for s in m.samples if s.name == name]


def test_tags_reach_ledger_spans_api_and_cli_and_only_named_ones_become_labels(run, oai, capsys) -> None:
    got = run(label_tags="team", label_caps={"team": 5})
    make_calls(oai)
    sink, registry = got["sink"], got["registry"]
    assert len(sink.calls) == 7 and all(c.priced for c in sink.calls)
    spendmeter.shutdown()  # flushes the ledger

    # Prometheus: `team` is a label of every attributed series, `tenant` and `plan` are not
    for metric in ("llm_cost_usd_total", "llm_tokens_total", "llm_requests_total",
                   "llm_request_duration_seconds_count"):
        sets = label_sets(registry, metric)
        assert sets and all("team" in s and "tenant" not in s and "plan" not in s for s in sets), metric
    cost: dict[str, float] = {}
    for sample in (s for m in registry.collect() for s in m.samples if s.name == "llm_cost_usd_total"):
        cost[sample.labels["team"]] = cost.get(sample.labels["team"], 0.0) + sample.value
    want = by(sink, "team")
    assert cost.keys() == want.keys() == {"payments", "search", "unknown"}
    for team, value in want.items():
        assert cost[team] == pytest.approx(float(value))
    assert {s["team"] for s in label_sets(registry, "llm_unpriced_requests_total")} <= set()  # provider+model only

    # spans: every tag, as spendmeter.tag.<name>
    spans = got["spans"].get_finished_spans()
    assert len(spans) == 7
    alice = [s.attributes for s in spans if s.attributes.get("user.id") == "alice"]
    assert alice and all(a["spendmeter.tag.team"] == "payments" and a["spendmeter.tag.tenant"] == "acme"
                         and a["spendmeter.tag.plan"] == "pro" for a in alice)
    dave = [s.attributes for s in spans if s.attributes.get("user.id") == "dave"]
    assert dave and not any(k.startswith("spendmeter.tag.") for k in dave[0])

    # ledger: a JSON object per call, NULL without tags
    with sqlite3.connect(got["ledger"]) as conn:
        rows = dict(conn.execute(f"SELECT user_id, tags FROM {TABLE}").fetchall())
    assert json.loads(rows["alice"]) == {"plan": "pro", "team": "payments", "tenant": "acme"}
    assert rows["dave"] is None

    # analytics, exact
    src = LedgerSource.open(got["ledger"])
    for tag in ("team", "tenant", "plan"):
        groups = {g.key[tag]: g.totals.cost for g in by_tag(src, tag)}
        assert groups == by(sink, tag), tag
    assert tag_names(src) == ["plan", "team", "tenant"]
    src.close()

    # the CLI
    assert cli(["report", "--ledger", str(got["ledger"]), "--tag", "tenant", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {r["tenant"]: Decimal(r["cost_usd"]) for r in report["rows"]} == by(sink, "tenant")
    assert cli(["report", "--ledger", str(got["ledger"]), "--tag", "Bad-Name"]) == 2


def test_the_cost_api_by_tag(run, oai) -> None:
    got = run()
    make_calls(oai)
    got_runtime_ledger = spendmeter.runtime.pipeline.current().runtime.ledger
    assert got_runtime_ledger.flush(10)
    reply = respond("GET", "/api/costs/by-tag", {"name": ["team"]}, {"host": "127.0.0.1"}, Access())
    assert reply.status == 200, reply.body
    body = json.loads(reply.body)
    assert {r["team"]: Decimal(r["cost_usd"]) for r in body["rows"]} == by(got["sink"], "team")
    assert body["rows"][0]["team"] == "payments"  # highest spend first
    names = json.loads(respond("GET", "/api/costs/tags", {}, {"host": "127.0.0.1"}, Access()).body)
    assert names["tags"] == ["plan", "team", "tenant"]
    for query in ({}, {"name": ["model"]}, {"name": ["team"], "bogus": ["1"]}):
        assert respond("GET", "/api/costs/by-tag", query, {"host": "127.0.0.1"}, Access()).status == 400, query
    # no tags exported: the metric contract's label sets, unchanged
    assert all("team" not in s for s in label_sets(got["registry"], "llm_cost_usd_total"))
    assert set(label_sets(got["registry"], "llm_cost_usd_total")[0]) == {"provider", "model", "user", "feature",
                                                                         "agent"}


def test_a_tag_label_is_capped_like_the_others(run, oai) -> None:
    got = run(label_tags=["tenant"], label_caps={"tenant": 2})
    for i in range(4):
        with spendmeter.attribute(user="u", tenant=f"t{i}"):
            oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)
    values = sorted(s["tenant"] for s in label_sets(got["registry"], "llm_requests_total"))
    assert values == ["other", "t0", "t1"]
    folded = got["registry"].get_sample_value("spendmeter_label_values_folded_total", {"label": "tenant"})
    assert folded == 2
    total = sum(s.value for m in got["registry"].collect() for s in m.samples if s.name == "llm_requests_total")
    assert total == 4  # folding keeps totals exact


def test_changing_the_tag_labels_at_reinit_rebuilds_the_series(run, oai) -> None:
    got = run(label_tags="team")
    with spendmeter.attribute(user="u", team="a"):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)
    run()  # same registry, no tag labels now
    with spendmeter.attribute(user="u", team="a"):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)
    sets = label_sets(got["registry"], "llm_requests_total")
    assert len(sets) == 1 and "team" not in sets[0]


@pytest.mark.parametrize("bad", ["model", "Team", "9lives", "a-b", "user"])
def test_bad_label_tags_fail_at_init(pipeline, bad: str) -> None:
    with pytest.raises(ConfigError, match="label_tags"):
        spendmeter.init(serve_metrics=False, registry=CollectorRegistry(), label_tags=bad)
    with pytest.raises(ConfigError, match="SPENDMETER_LABEL_TAGS"):
        from spendmeter.runtime.settings import resolve

        resolve(env={"SPENDMETER_LABEL_TAGS": f"team,{bad}"})
    with pytest.raises(ConfigError, match="label_caps"):
        spendmeter.init(serve_metrics=False, registry=CollectorRegistry(), label_caps={"team": 3})  # not exported


def test_a_version_1_ledger_is_migrated_and_keeps_its_rows(run, oai, tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    v1_columns = LEDGER_TABLE.columns[: COLUMN_NAMES.index("tags")]  # before version 2 added `tags`
    with sqlite3.connect(path) as conn:  # the table as spendmeter 0.1 (schema version 1) created it
        cols = ", ".join(c.render("sqlite").replace(" INTEGER", " TEXT") if c.type == "timestamp"
                         else c.render("sqlite") for c in v1_columns)  # ISO text timestamps until version 4
        conn.execute(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY AUTOINCREMENT, {cols})")
        conn.execute("CREATE TABLE spendmeter_schema_version (component TEXT NOT NULL, version INTEGER NOT NULL, "
                     "PRIMARY KEY (component))")
        conn.execute("INSERT INTO spendmeter_schema_version VALUES ('ledger', 1)")
        old = {c.name: None for c in v1_columns} | {
            "started_at": "2026-01-05T10:00:00.000000+00:00", "provider": "openai", "operation": "chat",
            "model": "gpt-4o-mini", "user_id": "old-user", "stream": 0, "batch": 0, "status": "ok", "attempts": 1,
            "input_tokens": 10, "cache_read_tokens": 0, "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0,
            "output_tokens": 5, "reasoning_tokens": 0, "usage_source": "reported", "cost_total_usd": "0.25"}
        conn.execute(f"INSERT INTO {TABLE} ({', '.join(old)}) VALUES ({', '.join('?' * len(old))})", list(old.values()))
    got = run()
    with spendmeter.attribute(user="new-user", team="payments"):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)
    spendmeter.shutdown()
    with sqlite3.connect(got["ledger"]) as conn:
        version = conn.execute("SELECT version FROM spendmeter_schema_version WHERE component = 'ledger'")
        assert version.fetchone() == (SCHEMA_VERSION,)
        assert [r[1] for r in conn.execute(f"PRAGMA table_info({TABLE})")][1:] == list(COLUMN_NAMES)
        rows = dict(conn.execute(f"SELECT user_id, tags FROM {TABLE}").fetchall())
        old_start = conn.execute(f"SELECT started_at, typeof(started_at) FROM {TABLE} WHERE user_id = 'old-user'")
        assert old_start.fetchone() == (micros(datetime(2026, 1, 5, 10, tzinfo=UTC)), "integer")
    assert rows == {"old-user": None, "new-user": '{"team":"payments"}'}
    src = LedgerSource.open(got["ledger"])
    assert {g.key["team"]: g.totals.calls for g in by_tag(src, "team")} == {"payments": 1, "unknown": 1}
    src.close()
