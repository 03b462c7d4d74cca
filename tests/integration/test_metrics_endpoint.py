"""init() → real SDK calls → GET /metrics over HTTP: exact values per label set, names per the contract."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import spendmeter
from spendmeter.testing.scenarios import LOCAL_PROVIDERS

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(url: str) -> dict[tuple[str, frozenset], float]:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


@pytest.fixture
def runtime(pipeline, provider_server):
    rt = spendmeter.init(prometheus_port=_free_port(), registry=CollectorRegistry(), usage_hosts=("127.0.0.1",),
        providers=LOCAL_PROVIDERS)
    yield rt
    spendmeter.shutdown()


def test_metrics_over_http_after_real_sdk_calls(runtime, oai, ant):
    with spendmeter.attribute(user="alice", feature="support", agent="router"):
        oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-fake-usage": "input=176,cached=1024,output=100"},
        )
        list(
            oai.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                extra_headers={"x-fake-usage": "input=176,cached=1024,output=100"},
            )
        )
    with spendmeter.attribute(user="bob", feature="contracts"):
        ant.messages.create(
            model="claude-3-haiku-20240307",
            max_tokens=200,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-fake-usage": "input=17,output=171"},
        )
        ant.messages.create(
            model="acme-llm-1",
            max_tokens=5,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-fake-usage": "input=5,output=5"},
        )
    m = _scrape(runtime.server.url + "/metrics")
    served = "gpt-4o-mini-2024-07-18"
    alice = {"provider": "openai", "model": served, "user": "alice", "feature": "support", "agent": "router"}
    one = (Decimal(176) * Decimal("0.15") + Decimal(1024) * Decimal("0.075") + Decimal(100) * Decimal("0.60")) / 10**6
    assert m[("llm_cost_usd_total", frozenset(alice.items()))] == pytest.approx(float(2 * one), rel=1e-12)
    assert m[("llm_tokens_total", frozenset({**alice, "type": "cache_read"}.items()))] == 2048
    assert m[("llm_requests_total", frozenset({**alice, "status": "ok", "usage": "reported"}.items()))] == 2
    bob = {
        "provider": "anthropic",
        "model": "claude-3-haiku-20240307",
        "user": "bob",
        "feature": "contracts",
        "agent": "unknown",
    }
    cost_bob = (Decimal(17) * Decimal("0.25") + Decimal(171) * Decimal("1.25")) / 10**6
    assert m[("llm_cost_usd_total", frozenset(bob.items()))] == pytest.approx(float(cost_bob), rel=1e-12)
    assert m[("llm_unpriced_requests_total", frozenset({"provider": "anthropic", "model": "acme-llm-1"}.items()))] == 1
    hist = {"provider": "anthropic", "model": "claude-3-haiku-20240307", "feature": "contracts", "agent": "unknown"}
    assert m[("llm_request_duration_seconds_count", frozenset(hist.items()))] == 1
    assert m[("llm_request_duration_seconds_bucket", frozenset({**hist, "le": "120.0"}.items()))] == 1
    assert not any(name.endswith("_created") for name, _ in m)


def test_metric_names_and_labels_are_the_public_contract(runtime, oai):
    oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    text = urllib.request.urlopen(runtime.server.url + "/metrics", timeout=10).read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    attrs = {"provider", "model", "user", "feature", "agent"}
    expected = {
        "llm_cost_usd": ("counter", attrs),
        "llm_tokens": ("counter", attrs | {"type"}),
        "llm_requests": ("counter", attrs | {"status", "usage"}),
        "llm_request_duration_seconds": ("histogram", {"provider", "model", "feature", "agent"}),
    }
    for name, (kind, labels) in expected.items():
        assert families[name].type == kind
        sample_labels = {k for s in families[name].samples for k in s.labels} - {"le"}
        assert sample_labels == labels, name
    for name in ("llm_reasoning_tokens", "llm_unpriced_requests", "spendmeter_internal_errors"):
        assert name in families  # declared, even before a first sample


def test_100k_distinct_users_stay_bounded_with_exact_totals(pipeline):
    from spendmeter import recorder
    from spendmeter.call import Attribution, Call, Cost, Usage
    from spendmeter.sinks.prometheus import PrometheusSink

    reg = CollectorRegistry()
    pipeline.set(sinks=(PrometheusSink(registry=reg),))
    cost = Decimal("0.0001")
    for i in range(100_000):
        call = Call(
            provider="openai",
            operation="chat",
            request_model="gpt-4o-mini",
            attribution=Attribution(user=f"user-{i}", feature=("support", "search", "coding")[i % 3], agent="router"),
        )
        call.usage = Usage(input=10, output=5, source="reported")
        call.cost = Cost(cost, Decimal(0), Decimal(0), Decimal(0), cost, "t", "gpt-4o-mini")
        recorder.finish(call)  # labelled by the pipeline's policy (default caps), then fanned out
    series = sum(1 for m in reg.collect() for s in m.samples)
    assert series < 10_000, series
    total = sum(s.value for m in reg.collect() for s in m.samples if s.name == "llm_cost_usd_total")
    assert total == pytest.approx(10.0, rel=1e-9)
    requests = sum(s.value for m in reg.collect() for s in m.samples if s.name == "llm_requests_total")
    assert requests == 100_000
    assert reg.get_sample_value("spendmeter_label_values_folded_total", {"label": "user"}) == 99_000


@pytest.mark.skipif(sys.platform != "linux", reason="gunicorn needs fork")
def test_three_gunicorn_workers_one_scrape_sums_all_calls(provider_server, tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "PROVIDER_URL": provider_server.url,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests' / 'integration'}",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "3",
            "-b",
            f"127.0.0.1:{port}",
            "-c",
            str(ROOT / "tests/integration/apps/gunicorn_conf.py"),
            "apps.gunicorn_agent:app",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90  # three workers importing the SDKs on a loaded 2-core machine
        while True:
            try:
                urllib.request.urlopen(base + "/metrics", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    output = proc.stdout.read().decode() if proc.poll() is not None else "no start"
                    raise AssertionError(output) from None
                time.sleep(0.2)

        def call(i: int, slow: bool = False) -> bytes:
            suffix = "&slow=1" if slow else ""
            return urllib.request.urlopen(f"{base}/call?user=u{i % 5}{suffix}", timeout=10).read()

        with ThreadPoolExecutor(max_workers=6) as pool:  # 12 slow calls at once: one worker cannot take them all
            pids = set(pool.map(lambda i: call(i, slow=True), range(12)))
        pids |= {call(i) for i in range(12, 60)}
        assert len(pids) >= 2, "the calls should spread over several workers"
        # restart one worker: its counters must be neither lost nor doubled
        os.kill(int(next(iter(pids))), signal.SIGTERM)
        time.sleep(1.5)
        for i in range(30):
            urllib.request.urlopen(f"{base}/call?user=u{i % 5}", timeout=10).read()
        # Each worker writes its calls' metrics from its finisher thread within its batch delay (20 ms): a
        # scrape served by one worker sees the others' last calls once that has passed.
        deadline = time.time() + 5
        while True:
            m = _scrape(base + "/metrics")
            requests = sum(v for (name, _), v in m.items() if name == "llm_requests_total")
            if requests >= 90 or time.time() > deadline:
                break
            time.sleep(0.05)
        assert requests == 90
        cost = sum(v for (name, _), v in m.items() if name == "llm_cost_usd_total")
        one = (176 * 0.15 + 1024 * 0.075 + 100 * 0.60) / 10**6
        assert cost == pytest.approx(90 * one, rel=1e-9)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
