"""What a hard crash loses: a process making real SDK calls is killed with SIGKILL mid-stream. Its ledger rows
and its multiprocess metric files are then compared with the calls that had returned to the application.

Calls are finished on a background thread (`runtime.finisher`, batches 20 ms apart) and ledger rows are
written in batches (`flush_interval_s`, 1 s), so a crash can lose the calls of the last moments: never more
than what returned in the last ~1.5 s, never a row that was not a call, and nothing at all on a normal exit.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import os, sys, time
    import openai, spendmeter
    from spendmeter.testing.scenarios import LOCAL_PROVIDERS

    spendmeter.init(serve_metrics=False, ledger=sys.argv[2], providers=LOCAL_PROVIDERS, usage_hosts=("127.0.0.1",))
    client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)
    n = 0
    while True:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                       extra_headers={"x-fake-usage": "input=100,output=10"})
        n += 1
        print(n, time.monotonic(), flush=True)
        if len(sys.argv) > 3 and n == int(sys.argv[3]):
            sys.exit(0)  # a normal exit: atexit writes everything
""")


def _run_child(provider_server, tmp_path: Path, calls: int | None) -> tuple[list[tuple[int, float]], Path, Path]:
    ledger = tmp_path / "ledger.db"
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "PYTHONPATH": str(ROOT / "src")}
    args = [sys.executable, "-c", CHILD, provider_server.openai_base_url, str(ledger)]
    if calls is not None:
        args.append(str(calls))
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[tuple[int, float]] = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while calls is not None or len(lines) < 150 or lines[-1][1] - lines[0][1] < 4:  # >= 4 s of calls
        line = proc.stdout.readline()
        if not line:
            break
        n, at = line.split()
        lines.append((int(n), float(at)))
        if time.monotonic() > deadline:
            break
    if calls is None:
        proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        rest = proc.stdout.read()  # calls that returned between the last read and the kill
        lines += [(int(n), float(at)) for n, at in (x.split() for x in rest.splitlines() if x.strip())]
        lines.append((-1, killed_at))
    proc.wait(timeout=30)
    return lines, ledger, metrics_dir


def _ledger_rows(ledger: Path) -> int:
    with sqlite3.connect(ledger) as db:
        return db.execute("select count(*) from spendmeter_ledger").fetchone()[0]


def _requests_in_files(metrics_dir: Path) -> float:
    script = ("from prometheus_client import CollectorRegistry, multiprocess\n"
              "r = CollectorRegistry(); multiprocess.MultiProcessCollector(r)\n"
              "print(sum(s.value for m in r.collect() for s in m.samples if s.name == 'llm_requests_total'))")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX only")
def test_sigkill_loses_at_most_the_last_moments_of_calls(provider_server, tmp_path):
    lines, ledger, metrics_dir = _run_child(provider_server, tmp_path, calls=None)
    killed_at = lines.pop()[1]
    returned = len(lines)
    assert returned >= 150
    rows, requests = _ledger_rows(ledger), _requests_in_files(metrics_dir)
    recent_ledger = sum(1 for _, at in lines if at > killed_at - 1.5)  # the ledger's 1 s batches, and margin
    recent_metrics = sum(1 for _, at in lines if at > killed_at - 0.5)  # the finisher's 20 ms batches
    print(f"RELIABILITY: SIGKILL after {returned} calls: {rows} ledger rows (lost {returned - rows}, bound "
          f"{recent_ledger}), {requests:.0f} in llm_requests_total (lost {returned - requests:.0f}, bound "
          f"{recent_metrics})")
    assert 0 <= returned - rows <= recent_ledger
    assert 0 <= returned - requests <= recent_metrics


def test_a_normal_exit_writes_every_call(provider_server, tmp_path):
    lines, ledger, metrics_dir = _run_child(provider_server, tmp_path, calls=40)
    assert len(lines) == 40
    assert _ledger_rows(ledger) == 40
    assert _requests_in_files(metrics_dir) == 40
