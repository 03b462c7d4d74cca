"""`spendmeter demo`: the real SDKs against the local fake provider, scraped over HTTP while it runs.

One in-process run (4 s at a high rate, a free port) checks the numbers on /metrics and /api/budgets and
the report; two subprocess runs check the command itself: a --duration run, and Ctrl-C / SIGTERM runs
that must still print the report and exit 0.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import spendmeter
from spendmeter.budgets import load_budgets
from spendmeter.cli import main as cli_main
from spendmeter.demo.agents import HEAVY_USER, UNKNOWN_MODEL, MessageSource, Profile, conversation_requests
from spendmeter.demo.cli import Demo, Options, demo_budgets_file
from spendmeter.testing import HEADER_SCENARIO, SCENARIO_ERROR_500

SRC = Path(spendmeter.__file__).resolve().parents[1]
SECTIONS = ("Spend by feature", "Top users", "Models", "Budgets", "Outcomes", "unpriced calls", "Where to look")

# Smaller than the shipped file's limit, so heavy-user is surely blocked within a few seconds on a slow box.
TEST_BUDGETS = """\
timezone: UTC
budgets:
  - {name: t-user-daily, scope: user, period: day, limit_usd: 1, warn_at: [0.5, 0.8], action: block}
  - {name: t-global-daily, scope: global, period: day, limit_usd: 50, warn_at: [0.8]}
  - {name: t-feature-daily, scope: feature, period: day, limit_usd: 20, warn_at: [0.8]}
"""


@pytest.fixture
def budgets_file(tmp_path: Path) -> Path:
    path = tmp_path / "budgets.yaml"
    path.write_text(TEST_BUDGETS)
    return path


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out.append((sample.labels, sample.value))
    return out


def _sum_by(samples: list[tuple[dict[str, str], float]], label: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for labels, value in samples:
        totals[labels[label]] = totals.get(labels[label], 0.0) + value
    return totals


def _seed_with_early_events(users: int, first: int) -> int:
    """A seed whose first messages include an unpriced call and a 500, so a slow machine still sees both."""
    for seed in range(1000):
        source = MessageSource(users, seed)
        requests = [r for _ in range(first) for r in conversation_requests(source.next(), Profile())]
        unpriced = any(r.kwargs["model"] == UNKNOWN_MODEL for r in requests)
        failing = any(r.kwargs["extra_headers"].get(HEADER_SCENARIO) == SCENARIO_ERROR_500 for r in requests)
        if unpriced and failing:
            return seed
    raise AssertionError("no seed below 1000 gives both early")


def test_demo_in_process_metrics_budgets_and_report(budgets_file: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    seed = _seed_with_early_events(12, first=30)  # 30 messages: 1 s at the rate below
    demo = Demo(Options(duration=4, rate=30, port=0, users=12, seed=seed, budgets=str(budgets_file),
                        ledger=str(tmp_path / "demo-ledger.db")), out=out, registry=CollectorRegistry())
    demo.start()
    try:
        url = demo.metrics_url
        assert url is not None
        during: list[str] = []

        def scrape_while_running() -> None:
            time.sleep(2.0)
            during.append(_get(url + "/metrics"))

        scraper = threading.Thread(target=scrape_while_running)
        scraper.start()
        demo.run()
        scraper.join(timeout=10)
        after = _get(url + "/metrics")  # still served until close()
        budgets = json.loads(_get(url + "/api/budgets"))
        top_users = json.loads(_get(url + "/api/costs/top-users?limit=1000"))  # from the demo's ledger
        daily_features = json.loads(_get(url + "/api/costs/daily-by-feature"))
        report = demo.report()
    finally:
        demo.close()

    # Spend was visible while the demo ran, and only grew.
    assert during and sum(v for _, v in _samples(during[0], "llm_cost_usd_total")) > 0
    cost = _samples(after, "llm_cost_usd_total")
    assert sum(v for _, v in cost) >= sum(v for _, v in _samples(during[0], "llm_cost_usd_total"))

    by_feature = _sum_by(cost, "feature")
    assert {f for f, v in by_feature.items() if v > 0} == {"support", "search", "coding", "summarization"}
    by_user = _sum_by(cost, "user")
    assert len([u for u, v in by_user.items() if v > 0 and u.startswith("user-")]) >= 5
    assert max(by_user, key=lambda u: by_user[u]) == HEAVY_USER
    assert {lbl["agent"] for lbl, _ in cost} >= {"router", "support", "search", "coding", "summarizer"}

    requests = _samples(after, "llm_requests_total")
    blocked = [(lbl, v) for lbl, v in requests if lbl["status"] == "blocked"]
    assert blocked and all(lbl["user"] == HEAVY_USER for lbl, _ in blocked)  # only heavy-user reached $1
    assert sum(v for lbl, v in requests if lbl["status"] == "error") > 0
    assert _samples(after, "llm_unpriced_requests_total")
    assert {lbl["model"] for lbl, _ in _samples(after, "llm_unpriced_requests_total")} == {UNKNOWN_MODEL}
    tokens = _sum_by(_samples(after, "llm_tokens_total"), "type")
    assert tokens["cache_read"] > 0 and tokens["cache_write"] > 0 and tokens["output"] > 0
    assert sum(v for _, v in _samples(after, "llm_reasoning_tokens_total")) > 0

    # The report's sink and the Prometheus sink saw the same calls.
    assert demo.stats.calls == sum(v for _, v in requests)
    assert demo.stats.status["blocked"] == sum(v for _, v in blocked)
    assert float(demo.stats.spend) == pytest.approx(sum(v for _, v in cost), rel=1e-9)

    heavy = [b for b in budgets if b["name"] == "t-user-daily" and b["key"] == HEAVY_USER]
    assert heavy and heavy[0]["utilization"] >= 1
    global_row = next(b for b in budgets if b["name"] == "t-global-daily")
    assert float(Decimal(global_row["spent_usd"])) == pytest.approx(float(demo.stats.spend), abs=1e-6)

    for section in SECTIONS:
        assert section in report, section
    assert re.search(rf"t-user-daily\s+user\s+{HEAVY_USER}\s.*BLOCKING", report)
    assert f"openai/{UNKNOWN_MODEL}" in report and "/api/budgets" in report

    # The ledger the demo wrote: the cost API during the run, `spendmeter report` after it, exact sums.
    assert sum(Decimal(r["cost_usd"]) for r in top_users["rows"]) == demo.stats.spend
    assert sum(r["calls"] for r in top_users["rows"]) == demo.stats.calls
    assert top_users["rows"][0]["user_id"] == HEAVY_USER
    assert sum(Decimal(r["cost_usd"]) for r in daily_features["rows"]) == demo.stats.spend
    assert demo.ledger and f"spendmeter report --ledger {demo.ledger}" in report and "/api/costs/top-users" in report
    assert "cost API:" in out.getvalue()
    capsys.readouterr()
    assert cli_main(["report", "--ledger", demo.ledger, "--by", "feature", "--format", "json"]) == 0
    assert Decimal(json.loads(capsys.readouterr().out)["totals"]["cost_usd"]) == demo.stats.spend
    assert "messages" in out.getvalue()  # the progress line (one per 5 s when not a TTY, and a last one)


def test_shipped_budgets_file_is_valid_and_blocks_per_user() -> None:
    with demo_budgets_file() as path:
        config = load_budgets(path)
    user = [b for b in config.budgets if b.scope == "user"]
    assert user and user[0].action == "block" and user[0].period == "day"
    assert any(b.scope == "global" and b.period == "month" for b in config.budgets)
    assert any(b.scope == "feature" for b in config.budgets)
    assert all(b.warn_at for b in config.budgets)


def test_workload_is_deterministic_for_a_seed() -> None:
    def first(seed: int) -> list[tuple[str, str, str]]:
        source = MessageSource(20, seed)
        calls = []
        for _ in range(50):
            msg = source.next()
            calls += [(msg.user, r.agent, r.kwargs["model"]) for r in conversation_requests(msg, Profile())]
        return calls

    assert first(7) == first(7)
    assert first(7) != first(8)
    assert {agent for _, agent, _ in first(7)} >= {"router", "support", "search", "coding", "summarizer"}


def test_real_without_keys_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert cli_main(["demo", "--real", "--duration", "1"]) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err


def test_bad_budgets_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "budgets.yaml"
    bad.write_text("budgets:\n  - {name: x, scope: users, period: day, limit_usd: 1}\n")
    assert cli_main(["demo", "--budgets", str(bad), "--port", "0", "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "budgets[0].scope" in err


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [sys.executable, "-m", "spendmeter.cli", "demo", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _check_report(stdout: str) -> None:
    for section in SECTIONS:
        assert section in stdout, (section, stdout[-2000:])
    calls = re.search(r"user messages, ([\d,]+) LLM calls", stdout)
    assert calls and int(calls.group(1).replace(",", "")) > 0
    ledger = re.search(r"spendmeter report --ledger (\S+)", stdout)  # the demo wrote a ledger, and says where
    assert ledger and Path(ledger.group(1)).is_file() and "/api/costs/top-users" in stdout


def test_demo_command_runs_for_duration(budgets_file: Path) -> None:
    proc = _spawn("--duration", "3", "--rate", "20", "--budgets", str(budgets_file))
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    _check_report(stdout)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_demo_stops_cleanly_on_signal(sig: signal.Signals, budgets_file: Path) -> None:
    proc = _spawn("--rate", "20", "--budgets", str(budgets_file))  # no --duration: runs until stopped
    assert proc.stdout is not None
    metrics = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "metrics:" in line:
            metrics = line.split()[-1]
            break
    assert metrics, proc.stderr.read() if proc.poll() is not None else "no banner"
    time.sleep(1.5)
    assert sum(v for _, v in _samples(_get(metrics), "llm_cost_usd_total")) > 0  # it is running
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    _check_report(stdout)
