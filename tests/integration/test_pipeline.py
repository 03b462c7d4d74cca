"""The pipeline through init(): sinks added before init survive it, a re-init under load loses and doubles
nothing, a hashed user id is absent from every output, and a failing span write is counted."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import urllib.request

import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client import CollectorRegistry, generate_latest

import spendmeter
from spendmeter.testing import CollectingSink, FlushingSpanExporter
from spendmeter.testing.scenarios import LOCAL_PROVIDERS

MSG = [{"role": "user", "content": "hi"}]
USAGE = {"x-fake-usage": "input=2000,output=1000"}
SECRET_USER = "alice.secret@example.com"


def _requests_total(registry: CollectorRegistry) -> float:
    return sum(s.value for m in registry.collect() for s in m.samples if s.name == "llm_requests_total")


@pytest.fixture
def sink(pipeline):
    collected = CollectingSink()
    spendmeter.add_sink(collected)
    yield collected
    spendmeter.remove_sink(collected)
    spendmeter.shutdown()


def test_a_sink_added_before_init_survives_init_and_reinit(sink, provider_server, oai):
    spendmeter.init(serve_metrics=False, registry=CollectorRegistry(), usage_hosts=("127.0.0.1",),
        providers=LOCAL_PROVIDERS)
    oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)
    spendmeter.init(serve_metrics=False, registry=CollectorRegistry(), usage_hosts=("127.0.0.1",),
        providers=LOCAL_PROVIDERS)
    oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)
    assert len(sink.calls) == 2
    assert all(c.priced for c in sink.calls)  # both went through a full pipeline, pricing included


def test_reinit_under_load_loses_no_call_and_counts_none_twice(sink, provider_server, tmp_path):
    registry = CollectorRegistry()
    ledger = tmp_path / "ledger.db"
    options = dict(serve_metrics=False, registry=registry, usage_hosts=("127.0.0.1",),
        providers=LOCAL_PROVIDERS, ledger=str(ledger))
    spendmeter.init(**options)
    client = openai.OpenAI(base_url=provider_server.openai_base_url, api_key="sk-test", max_retries=0)
    stop = threading.Event()
    made: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        done = 0
        with spendmeter.attribute(user=f"u{n}", feature="load"):
            while not stop.is_set():
                if done % 3 == 2:
                    list(client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True,
                                                        extra_headers=USAGE))  # fmt: skip
                else:
                    client.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)
                done += 1
        with lock:
            made.append(done)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    reinits = 0
    try:
        while reinits < 8:
            stop.wait(0.15)
            spendmeter.init(**options)  # same registry, same ledger: swapped while calls are in flight
            reinits += 1
    finally:
        stop.set()
        for t in threads:
            t.join()
    spendmeter.shutdown()  # flushes the ledger
    total = sum(made)
    assert total > 50, "the load was too light to prove anything"
    assert len(sink.calls) == total
    assert len({id(c) for c in sink.calls}) == total  # each call once
    assert _requests_total(registry) == total
    with sqlite3.connect(ledger) as db:
        assert db.execute("SELECT COUNT(*) FROM spendmeter_ledger").fetchone()[0] == total


BUDGETS = """
budgets:
  - name: per-user
    scope: user
    period: day
    limit_usd: 0.0001
    warn_at: [0.5]
"""


def test_a_hashed_user_id_is_absent_from_every_output(sink, provider_server, oai, tmp_path, caplog):
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(BUDGETS)
    exporter, reader = FlushingSpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    caplog.set_level(logging.DEBUG, logger="spendmeter")
    rt = spendmeter.init(
        prometheus_port=0, registry=registry, usage_hosts=("127.0.0.1",),
            providers=LOCAL_PROVIDERS, hash_users_key="k3y",
        budgets=budgets, ledger=str(tmp_path / "ledger.db"), tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
    )  # fmt: skip
    with spendmeter.attribute(user=SECRET_USER, feature="support"):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)
        list(oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True, extra_headers=USAGE))
    oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE, user=SECRET_USER)
    hashed = sink.calls[0].who.user
    assert hashed and hashed != SECRET_USER and {c.who.user for c in sink.calls} == {hashed}

    outputs = {
        "metrics": urllib.request.urlopen(rt.server.url + "/metrics", timeout=10).read().decode(),
        "metrics (registry)": generate_latest(registry).decode(),
        "api/budgets": urllib.request.urlopen(rt.server.url + "/api/budgets", timeout=10).read().decode(),
        "spans": json.dumps([dict(s.attributes) for s in exporter.get_finished_spans()]),
        "otlp metrics": reader.get_metrics_data().to_json(),
        "logs": caplog.text,
    }
    spendmeter.shutdown()  # flushes the ledger
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        outputs["ledger"] = json.dumps(db.execute("SELECT * FROM spendmeter_ledger").fetchall(), default=str)
    for name, text in outputs.items():
        assert SECRET_USER not in text, f"the raw user id leaked into {name}"
    for name in ("metrics", "api/budgets", "spans", "otlp metrics", "ledger"):
        assert hashed in outputs[name], f"{name} does not carry the hashed id, so the check above proves nothing"


def test_a_failing_span_write_is_counted_on_metrics(sink, provider_server, oai, monkeypatch):
    from spendmeter.sinks import spans

    def broken(call):
        raise RuntimeError("attribute bug")

    registry = CollectorRegistry()
    spendmeter.init(serve_metrics=False, registry=registry, usage_hosts=("127.0.0.1",),
        providers=LOCAL_PROVIDERS, tracer_provider=TracerProvider())
    monkeypatch.setattr(spans, "_cost_attributes", broken)
    result = oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)
    assert result.choices[0].message.content
    assert registry.get_sample_value("spendmeter_internal_errors_total", {"kind": "sink.spans"}) == 1
    assert _requests_total(registry) == 1  # the other sinks still got the call
