"""`/metrics` render time and memory per series, with spendmeter's Prometheus sink, single process and
prometheus_client multiprocess mode.

Series are counted as the sample lines of `llm_*` metrics in the rendered exposition (each counter line,
each histogram `_bucket`, `_sum` and `_count` line; `# HELP`/`# TYPE` lines are not counted): what
Prometheus stores one series for. They come from finished calls, one per distinct label tuple, finished
the way the recorder's `_finish` does (`LabelPolicy.identity()`, `LabelPolicy.labels()`, with caps raised
so nothing folds into `other`) and handed to `PrometheusSink.on_call()`. Each call is a priced chat call
(as in benchmarks/ledger.py) with its own user, one of 3 models and 10 features: 5 counter lines per user
(cost, input/cache_read/output tokens, requests) and 15 histogram lines per (model, feature) for the
duration (no user label).

- single process: `generate_latest(registry)` of the sink's registry, median of `--renders`; memory per 1k
  series = RSS growth while the series were made (one child process) and the traced allocations
  (tracemalloc, in another child: tracing costs memory of its own), per 1000 series.
- multiprocess: `PROMETHEUS_MULTIPROC_DIR` set before prometheus_client is imported, so every part runs in
  a child process of its own: 2 writer processes make half the users each (the histogram series are
  shared), then a third renders `generate_latest()` of a registry with a `MultiProcessCollector` (what
  spendmeter's `/metrics` serves in that mode), median of `--renders`; memory = bytes of the writers'
  mmap files per 1000 series, as allocated on disk and as used.

Run: `python benchmarks/metrics_render.py [--series 1000 10000] [--renders 15] [--json]`. Adds ./src to
sys.path when spendmeter is not installed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-nano")
FEATURES = 10
COUNTER_LINES_PER_USER = 5
HISTOGRAM_LINES = 15  # 12 buckets + +Inf, _sum, _count
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def users_for(target: int) -> int:
    """Distinct users (label tuples) that make `target` llm_* sample lines."""
    combos = len(MODELS) * FEATURES
    return max(combos, -(-(target - combos * HISTOGRAM_LINES) // COUNTER_LINES_PER_USER))


# ------------------------------------------------------------------------------------ in a child process
def _setup() -> None:
    try:
        import spendmeter  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(SRC))
    from prometheus_client import disable_created_metrics

    disable_created_metrics()  # as spendmeter.init() does: no _created series


def make_sink() -> tuple[Any, Any]:
    from prometheus_client import CollectorRegistry

    from spendmeter.sinks.prometheus import PrometheusSink
    from spendmeter.telemetry.labels import LabelPolicy

    policy = LabelPolicy(caps={"user": 10**7, "feature": 10**4, "model": 10**4})
    return PrometheusSink(CollectorRegistry()), policy


def feed(sink: Any, policy: Any, users: range, prefix: str) -> None:
    """One finished call per user, labels as the recorder sets them."""
    from spendmeter.call import Attribution, Call, Cost, Usage

    for i in users:
        model = MODELS[i % len(MODELS)]
        call = Call("openai", "chat", model, Attribution(user=f"{prefix}user-{i}", feature=f"feature-{i % FEATURES}",
                    agent="router"), started_at=T0 + timedelta(milliseconds=i))  # fmt: skip
        call.usage = Usage(input=1000 + i % 97, cache_read=512, output=200 + i % 13, source="reported")
        parts = [Decimal("0.00000015") * (1000 + i % 97), Decimal("0.000000075") * 512, Decimal(0),
                 Decimal("0.0000006") * (200 + i % 13)]  # fmt: skip
        call.cost = Cost(*parts, total=sum(parts, Decimal(0)), source="bench", price_entry=model)
        call.ended_at, call.duration_s, call.end_reason = call.started_at + timedelta(seconds=1), 0.8, "completed"
        call.identity = policy.identity(call.attribution)
        call.labels = policy.labels(call)
        sink.on_call(call)


def count_series(text: bytes) -> int:
    return sum(1 for line in text.splitlines() if line.startswith(b"llm_"))


def render_times(registry: Any, renders: int) -> tuple[list[float], bytes]:
    from prometheus_client import generate_latest

    text = generate_latest(registry)  # warm
    times = []
    for _ in range(renders):
        started = time.perf_counter()
        generate_latest(registry)
        times.append((time.perf_counter() - started) * 1000)
    return times, text


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def child_single(target: int, renders: int, traced: bool) -> dict[str, Any]:
    _setup()
    feed(*make_sink(), range(3), "warm-")  # imports and first-use caches, outside the measurement (and registry)
    sink, policy = make_sink()
    gc.collect()
    if traced:
        import tracemalloc

        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    rss0 = rss_bytes()
    feed(sink, policy, range(users_for(target)), "")
    gc.collect()
    out: dict[str, Any] = {"rss_delta": rss_bytes() - rss0}
    if traced:
        out["traced_delta"] = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return out
    times, text = render_times(sink.registry, renders)
    out.update(series=count_series(text), bytes=len(text), render_ms=times)
    return out


def child_write(target: int, index: int, writers: int) -> dict[str, Any]:
    _setup()
    sink, policy = make_sink()
    users = users_for(target)
    feed(sink, policy, range(index, users, writers), "")  # this writer's share of the users
    return {"pid": os.getpid()}


def child_render(renders: int) -> dict[str, Any]:
    _setup()
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    times, text = render_times(registry, renders)
    return {"series": count_series(text), "bytes": len(text), "render_ms": times}


# ------------------------------------------------------------------------------------------ orchestration
def run_child(*argv: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True, env=env,
                          check=False, timeout=900)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"child {argv} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def mmap_bytes(directory: str) -> tuple[int, int]:
    """(bytes on disk, bytes used) of the multiprocess files: each starts with the 4-byte count of used bytes."""
    allocated = used = 0
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        allocated += os.path.getsize(path)
        with open(path, "rb") as fh:
            used += int.from_bytes(fh.read(4), sys.byteorder)
    return allocated, used


def ms(times: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(times), 2), "min": round(min(times), 2), "renders": len(times)}


def measure(target: int, renders: int, writers: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    single = run_child("single", str(target), str(renders), env=env)
    traced = run_child("traced", str(target), str(renders), env=env)
    per_k = 1000 / single["series"]
    result: dict[str, Any] = {
        "target": target,
        "single": {"series": single["series"], "exposition_bytes": single["bytes"],
                   "render_ms": ms(single["render_ms"]), "rss_bytes_per_1k_series": round(single["rss_delta"] * per_k),
                   "traced_bytes_per_1k_series": round(traced["traced_delta"] * per_k)},
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="spendmeter-multiproc-") as directory:
        mp_env = {**env, "PROMETHEUS_MULTIPROC_DIR": directory}
        procs = [subprocess.Popen([sys.executable, __file__, "--child", "write", str(target), str(i), str(writers)],
                                  env=mp_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for i in range(writers)]  # fmt: skip
        for p in procs:
            _, err = p.communicate(timeout=900)
            if p.returncode != 0:
                raise RuntimeError(f"writer failed:\n{err.decode()[-3000:]}")
        rendered = run_child("render", str(renders), env=mp_env)
        allocated, used = mmap_bytes(directory)
        per_k = 1000 / rendered["series"]
        result["multiprocess"] = {
            "writers": writers, "files": len(os.listdir(directory)), "series": rendered["series"],
            "exposition_bytes": rendered["bytes"], "render_ms": ms(rendered["render_ms"]),
            "mmap_bytes_per_1k_series": round(allocated * per_k), "mmap_used_bytes_per_1k_series": round(used * per_k),
        }  # fmt: skip
    return result


def machine() -> dict[str, Any]:
    try:
        from importlib.metadata import version

        prom = version("prometheus_client")
    except Exception:  # pragma: no cover - not installed as a distribution
        prom = "?"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(), "prometheus_client": prom,
            "load_avg": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind in ("single", "traced"):
            out = child_single(int(rest[0]), int(rest[1]), traced=kind == "traced")
        elif kind == "write":
            out = child_write(int(rest[0]), int(rest[1]), int(rest[2]))
        else:
            out = child_render(int(rest[0]))
        print(json.dumps(out))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--renders", type=int, default=15, help="renders timed per case (median reported)")
    parser.add_argument("--writers", type=int, default=2, help="writer processes in multiprocess mode")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    args = parser.parse_args()
    info = machine()
    print(f"{info['cpu']}, {info['cpus']} CPUs, Python {info['python']}, prometheus_client "
          f"{info['prometheus_client']}, load average {info['load_avg'][0]}")  # fmt: skip
    results = []
    for target in args.series:
        r = measure(target, args.renders, args.writers)
        results.append(r)
        s, m = r["single"], r["multiprocess"]
        print(f"{s['series']:>6} series, single process: render {s['render_ms']['median']:7.2f} ms median "
              f"({s['exposition_bytes'] / 1024:.0f} KiB); per 1k series {s['rss_bytes_per_1k_series'] / 1024:.0f} KiB "
              f"RSS, {s['traced_bytes_per_1k_series'] / 1024:.0f} KiB traced")  # fmt: skip
        print(f"{m['series']:>6} series, multiprocess ({m['writers']} writers, {m['files']} files): render "
              f"{m['render_ms']['median']:7.2f} ms median; mmap files per 1k series "
              f"{m['mmap_bytes_per_1k_series'] / 1024:.0f} KiB on disk, "
              f"{m['mmap_used_bytes_per_1k_series'] / 1024:.0f} KiB used")  # fmt: skip
    if args.json:
        print(json.dumps({"machine": info, "renders": args.renders, "results": results}))


if __name__ == "__main__":
    main()
