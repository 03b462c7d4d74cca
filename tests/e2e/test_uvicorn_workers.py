"""uvicorn --workers 2 running an instrumented ASGI app (tests/integration/apps/uvicorn_agent.py) with the
real openai and anthropic SDKs against the fake provider, a shared ledger (PostgreSQL, then SQLite) and a
shared budget store: every worker's calls in one /metrics (PROMETHEUS_MULTIPROC_DIR), every cost API route
and /api/budgets answered the same by any worker with the numbers the fake provider served, and a worker
killed with SIGKILL (uvicorn has no child_exit hook) neither loses nor doubles its calls.

Under CI=true a missing PostgreSQL fails the PostgreSQL case."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from apps import cost_plan  # noqa: E402

from spendmeter.pricing import load_pricebook  # noqa: E402
from spendmeter.testing import ProviderServer  # noqa: E402

CALLS = 24
ROUTES = (("daily-by-feature", ("day", "feature")), ("top-users", ("user_id",)), ("by-model", ("model",)),
          ("by-agent", ("agent",)), ("by-provider", ("provider",)), ("by-conversation", ("conversation",)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=20) as resp:
        return resp.read()


def _metrics(base: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(_get(base + "/metrics").decode()):
        for s in family.samples:
            out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def _running(pid: int) -> bool:
    """Alive and not a zombie."""
    out = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return bool(out.stdout.strip()) and not out.stdout.strip().startswith("Z")


def run_workers(tmp_path: Path, ledger: str) -> None:
    with ProviderServer() as provider:
        multiproc = tmp_path / "multiproc"
        multiproc.mkdir()
        budgets = tmp_path / "budgets.yaml"
        budgets.write_text(f"timezone: UTC\nstore: sqlite:///{tmp_path / 'spend.db'}\nbudgets:\n"
                           "  - {name: per-user, scope: user, period: day, limit_usd: 100, warn_at: [0.5]}\n")
        port = _free_port()
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc), "PROVIDER_URL": provider.url,
               "SPENDMETER_LEDGER": ledger, "SPENDMETER_BUDGETS": str(budgets), "PLAN_CALLS": str(CALLS),
               "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests" / "integration")])}
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "apps.uvicorn_agent:app", "--workers", "2",
                                 "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 60
            seen: set[int] = set()
            while len(seen) < 2:  # both workers up and answering
                try:
                    seen.add(int(_get(base + "/pid")))
                except OSError:
                    time.sleep(0.3)
                if time.time() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise AssertionError(proc.stdout.read().decode() if proc.stdout else "no start")  # type: ignore[union-attr]
            with ThreadPoolExecutor(8) as pool:
                pids = set(pool.map(lambda i: int(_get(f"{base}/call?i={i}")), range(CALLS)))
            assert pids == seen, "the calls should spread over both workers"
            served = cost_plan.served(provider, load_pricebook(None))
            assert len(served) == CALLS
            _check(base, served, pids)
            _check_dead_worker(base, sorted(pids)[0], served, multiproc)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _check(base: str, served: list[cost_plan.Served], pids: set[int]) -> None:
    total = sum((c.cost for c in served), Decimal(0))
    # A worker writes its calls' metrics from its finisher thread within its batch delay (20 ms): a scrape
    # served by the other worker sees this one's last calls once that has passed.
    deadline = time.time() + 5
    while (m := _metrics(base))["llm_requests_total"] < CALLS and time.time() < deadline:
        time.sleep(0.05)
    assert m["llm_requests_total"] == CALLS  # every worker's calls, one scrape
    assert m["llm_cost_usd_total"] == pytest.approx(float(total), rel=1e-9)
    time.sleep(1.5)  # the other worker's ledger writer flushes every second
    for route, by in ROUTES:
        dims = tuple("user" if d == "user_id" else d for d in by)
        query = "" if route.startswith("daily") else "?limit=1000"
        answers = {_get(f"{base}/api/costs/{route}{query}") for _ in range(6)}  # spread over the workers
        assert len(answers) == 1, route  # any worker, the same answer
        rows = json.loads(next(iter(answers)))["rows"]
        assert cost_plan.observed(rows, by) == cost_plan.expect(served, dims), route
    user = json.loads(_get(f"{base}/api/costs/users/alice"))
    assert Decimal(user["totals"]["cost_usd"]) == sum((c.cost for c in served if c.attr["user"] == "alice"), Decimal(0))
    calls = json.loads(_get(f"{base}/api/costs/users/bob/calls?limit=1000"))["calls"]
    assert len(calls) == sum(1 for c in served if c.attr["user"] == "bob")
    conv = json.loads(_get(f"{base}/api/costs/conversations/conv-1"))
    assert conv["totals"]["calls"] == sum(1 for c in served if c.attr["conversation"] == "conv-1")
    budgets = {_get(f"{base}/api/budgets") for _ in range(6)}
    assert len(budgets) == 1
    spent = {b["key"]: Decimal(b["spent_usd"]) for b in json.loads(next(iter(budgets)))}
    for key in ("alice", "bob", "carol"):
        assert spent[key] == sum((c.cost for c in served if c.attr["user"] == key), Decimal(0))


def _check_dead_worker(base: str, victim: int, served: list[cost_plan.Served], multiproc: Path) -> None:
    os.kill(victim, signal.SIGKILL)
    deadline = time.time() + 60
    while _running(victim):
        assert time.time() < deadline, "the killed worker is still there"
        time.sleep(0.2)
    answering: set[int] = set()
    while len(answering - {victim}) < 2:  # uvicorn starts a new worker in its place
        assert time.time() < deadline, "uvicorn did not replace the killed worker"
        try:
            answering.add(int(_get(base + "/pid")))
        except OSError:
            time.sleep(0.3)
    m = _metrics(base)
    assert m["llm_requests_total"] == CALLS  # the dead worker's calls stay counted, once
    assert m["llm_cost_usd_total"] == pytest.approx(float(sum((c.cost for c in served), Decimal(0))), rel=1e-9)
    assert not any(f"_{victim}.db" in p.name and "live" in p.name for p in multiproc.iterdir())


def test_uvicorn_two_workers_postgres_ledger(postgres_dsn: str, tmp_path: Path) -> None:
    name = f"uvicorn_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    run_workers(tmp_path, postgres_dsn.rsplit("/", 1)[0] + "/" + name)


def test_uvicorn_two_workers_sqlite_ledger(tmp_path: Path) -> None:
    run_workers(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}")
