"""Instructions executed per call, counted by Valgrind's callgrind: the tools, modes and conditions of
`peers.py` (the same worker code), on a clock that does not drift with the machine's load.

    python benchmarks/instructions.py [--calls 100] [--warmup 20] [--tools spendmeter,otel-v2,...]
        [--modes "openai sync,anthropic sync"] [--python otel-v2=/tmp/bench-otel-v2/bin/python ...] [--json out.json]

Why: on a shared VM the CPU-time ratios of `peers.py` move by ±300 µs per call between runs. An instruction
count is exact and repeatable (to a few hundred instructions per call), so it shows what a change of ours
costs or saves. It is not time: it ignores cache misses and branch mispredictions, which a hook that touches
more code also causes in the SDK around it, so the CPU-time figures of `peers.py` stay the ones the targets
are judged on. Tools that do the same work with fewer instructions still win there on average.

Each tool runs in one worker under `valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes`.
After the peers' warm-up (`peers._Worker.prepare`, uncounted), for each mode and side (bare, instrumented):
counters zeroed, `--calls` calls, a dump; the tool's flush (spendmeter's queued calls), a dump. Valgrind runs
one thread at a time, so a background thread's work is counted, never overlapped. Reported per call:
- caller: instructions of the calling (main) thread during the calls;
- process: every thread, during the calls and the flush after them.
Two workers run at a time (one per core).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import peers  # noqa: E402 - benchmarks/peers.py, beside this script: the tools, modes and calls

SIDES = ("bare", "inst")


# ------------------------------------------------------------------------------------------------ the worker
def _control(*args: str) -> None:
    """callgrind_control on this process; polled with sleeps, so Valgrind can take the request."""
    proc = subprocess.Popen(["callgrind_control", *args, str(os.getpid())], stdout=subprocess.DEVNULL)
    while proc.poll() is None:
        time.sleep(0.01)


def _run(worker: Any, mode: str, calls: int) -> None:
    fn, is_async = worker.calls[mode]
    if is_async:
        async def run() -> None:
            for _ in range(calls):
                await fn()

        worker.loop.run_until_complete(run())
    else:
        for _ in range(calls):
            fn()


def worker_main(name: str, modes: list[str], calls: int, warmup: int, collector: str) -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        worker = peers._Worker(name)
    except Exception as e:  # not installed here, or failed to set up
        proto.write(json.dumps({"status": "n/a", "reason": f"{type(e).__name__}: {e}"}) + "\n")
        return
    live = [m for m in modes if worker.supported(m)]
    worker.prepare(live, warmup)
    collections: dict[str, list[int]] = {}  # per mode and side: the GC's collections of each generation
    _control("-i", "on")
    for index, mode in enumerate(modes):
        if mode not in live:
            continue
        for side in SIDES:
            (worker.tool.off if side == "bare" else worker.tool.on)()
            gc.collect()
            if collector == "off":
                gc.disable()
            before = [g["collections"] for g in gc.get_stats()]
            _control("-z")
            _run(worker, mode, calls)
            _control("-d", f"m{index}-{side}-calls")
            after = [g["collections"] for g in gc.get_stats()]
            collections[f"m{index}-{side}"] = [a - b for a, b in zip(after, before, strict=True)]
            gc.enable()
            worker.tool.flush()
            _control("-d", f"m{index}-{side}-flush")
        worker.tool.off()
    _control("-i", "off")
    proto.write(json.dumps({"status": "ready", "info": worker.info, "modes": live, "gc": collections}) + "\n")


# ------------------------------------------------------------------------------------------------ the driver
_TRIGGER = re.compile(r"^desc: Trigger: dump (m\d+-\w+-\w+)", re.M)
_THREAD = re.compile(r"^thread: (\d+)", re.M)
_TOTALS = re.compile(r"^totals: (\d+)", re.M)


def _counts(outdir: str, prefix: str) -> dict[tuple[str, str, str], dict[str, int]]:
    """(mode index, side, phase) -> {"caller": Ir of thread 1, "others": Ir of every other thread}."""
    counts: dict[tuple[str, str, str], dict[str, int]] = {}
    for fname in os.listdir(outdir):
        if not fname.startswith(prefix + "."):
            continue
        with open(os.path.join(outdir, fname)) as f:
            head = f.read(4096)
            f.seek(max(0, os.path.getsize(f.name) - 4096))
            tail = f.read()
        trigger, thread, totals = _TRIGGER.search(head), _THREAD.search(head), _TOTALS.search(tail)
        if not (trigger and thread and totals):
            continue
        key = tuple(trigger.group(1).split("-"))
        slot = counts.setdefault(key, {"caller": 0, "others": 0})  # type: ignore[arg-type]
        slot["caller" if thread.group(1) == "1" else "others"] += int(totals.group(1))
    return counts


def _measure(tool: str, python: str, args: argparse.Namespace, outdir: str, env: dict[str, str]) -> Any:
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
           f"--callgrind-out-file={outdir}/{tool}.%p", python, os.path.abspath(__file__), "--worker", tool,
           "--modes", ",".join(args.modes), "--calls", str(args.calls), "--warmup", str(args.warmup),
           "--gc", args.gc]
    with open(os.path.join(outdir, f"{tool}.log"), "w") as log:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=HERE)


def _summary(counts: dict[tuple[str, str, str], dict[str, int]], index: int, calls: int,
             collections: dict[str, list[int]]) -> dict[str, Any] | None:
    m = f"m{index}"
    out: dict[str, Any] = {"gc": {side: collections.get(f"{m}-{side}") for side in SIDES}}
    for side in SIDES:
        run, flush = counts.get((m, side, "calls")), counts.get((m, side, "flush"))
        if run is None or flush is None:
            return None
        out[side] = {"caller": run["caller"] / calls,
                     "process": (run["caller"] + run["others"] + flush["caller"] + flush["others"]) / calls}
    for clock in ("caller", "process"):
        bare, inst = out["bare"][clock], out["inst"][clock]
        out[clock] = {"bare": bare, "instrumented": inst, "added": inst - bare, "ratio": inst / bare}
    return out


def _collections(by_side: dict[str, list[int] | None]) -> str:
    def older(counts: list[int] | None) -> str:
        return "?" if not counts else "+".join(str(n) for n in counts)

    return " / ".join(older(by_side.get(side)) for side in SIDES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per mode and side")
    parser.add_argument("--warmup", type=int, default=20, help="uncounted calls per mode and side first")
    parser.add_argument("--tools", default=",".join(("spendmeter", *peers.ANCHORS, peers.FLOOR)))
    parser.add_argument("--modes", default=",".join(peers.MODES))
    parser.add_argument("--python", action="append", default=[], metavar="TOOL=PATH")
    parser.add_argument("--gc", choices=("on", "off"), default="on",
                        help="off: the garbage collector is disabled during the counted calls")
    parser.add_argument("--json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.worker:
        worker_main(args.worker, args.modes, args.calls, args.warmup, args.gc)
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("instructions.py needs Valgrind (Debian: apt-get install valgrind)")
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    pythons = {t: sys.executable for t in tools}
    for item in args.python:
        tool, _, path = item.partition("=")
        pythons[tool] = path
    env = {k: v for k, v in os.environ.items() if not k.startswith(peers.STRIPPED_ENV_PREFIXES)}
    outdir = tempfile.mkdtemp(prefix="instructions-")
    started = time.monotonic()
    print(f"{args.calls} calls per mode and side, {args.warmup} warm-up calls uncounted; callgrind files and "
          f"logs in {outdir}")
    results: dict[str, Any] = {}
    pending = list(tools)
    while pending:
        batch, pending = pending[:2], pending[2:]
        procs = {t: _measure(t, pythons[t], args, outdir, env) for t in batch}
        for tool, proc in procs.items():
            out, _ = proc.communicate()
            reply = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"status": "error"}
            if reply.get("status") != "ready":
                print(f"  {tool}: {reply.get('reason', 'failed')} (log: {outdir}/{tool}.log)")
                continue
            counts = _counts(outdir, tool)
            results[tool] = {mode: _summary(counts, i, args.calls, reply.get("gc", {}))
                             for i, mode in enumerate(args.modes)}
            print(f"  {tool} done ({time.monotonic() - started:.0f} s)", flush=True)

    print("\nthousands of instructions per call; added and × against the bare SDK in the same worker; gc: the")
    print("garbage collector's runs of generations 0+1+2 during the counted calls, bare / instrumented (a run")
    print(f"that frees something the SDK then rebuilds adds that rebuild to its side; --gc {args.gc})")
    print(f"{'mode':<19}{'tool':<13}" + "".join(f"{c + ' bare':>14}{'instr':>9}{'added':>8}{'×':>7}"
                                                for c in ("caller", "process")) + f"  {'gc':>11}")
    checks: dict[str, Any] = {}
    for mode in args.modes:
        for tool in tools:
            s = results.get(tool, {}).get(mode)
            if s is None:
                continue
            cells = "".join(f"{s[c]['bare'] / 1e3:>14.1f}{s[c]['instrumented'] / 1e3:>9.1f}"
                            f"{s[c]['added'] / 1e3:>8.1f}{s[c]['ratio']:>7.3f}" for c in ("caller", "process"))
            print(f"{mode:<19}{tool:<13}{cells}  {_collections(s['gc']):>11}")
        print()
    print("check: spendmeter's added instructions ≤ 1/3 of the lightest peer's, and ≤ 1.05× the bare call")
    for clock in ("caller", "process"):
        for mode in args.modes:
            me = results.get("spendmeter", {}).get(mode)
            others = [(results[t][mode][clock]["added"], t) for t in tools
                      if t in peers.ANCHORS and results.get(t, {}).get(mode)]
            if me is None or not others:
                continue
            lightest, name = min(others)
            added, ratio = me[clock]["added"], me[clock]["ratio"]
            checks.setdefault(clock, {})[mode] = {"added": added, "ratio": ratio, "lightest_peer": name,
                                                  "lightest_added": lightest}
            floor = results.get(peers.FLOOR, {}).get(mode)
            if floor is not None:
                checks[clock][mode]["span_floor_added"] = floor[clock]["added"]
            print(f"  {clock:<8}{mode:<19} +{added / 1e3:.1f}k vs {name} +{lightest / 1e3:.1f}k: "
                  f"1/3 {'PASS' if added <= lightest / 3 else 'FAIL'};  ×{ratio:.3f} "
                  f"{'PASS' if ratio <= 1.05 else 'FAIL'}"
                  + (f";  one bare span: +{floor[clock]['added'] / 1e3:.1f}k" if floor is not None else ""))
    print(f"done in {time.monotonic() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"calls": args.calls, "warmup": args.warmup, "gc": args.gc, "results": results,
                       "checks": checks}, f, indent=2)


if __name__ == "__main__":
    main()
