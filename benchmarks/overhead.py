"""Added time per LLM call with spendmeter on (metrics + spans + pricing), as a ratio against the bare SDK.

Both are measured in the same run, against the same local provider-compatible server (run in its own
process, as a real provider would be, so it does not compete with the client for the GIL), in interleaved
rounds (bare, instrumented, bare, ...) so that drift on the machine hits both alike. Modes: openai and
anthropic × sync, async, stream. Loopback HTTP is far faster than a real provider (≈1 ms against
hundreds of ms), so the ratio here is a pessimistic upper bound of the overhead in production; the
absolute µs added per call is printed too.

    python benchmarks/overhead.py [--calls 300] [--rounds 5] [--json out.json] [--target 0.03]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import anthropic
import openai
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry

import spendmeter
from spendmeter.instrumentation import patches

MSG = [{"role": "user", "content": "How do I reset my password?"}]
HEADERS = {"x-fake-usage": "input=176,cached=1024,output=100"}


class NullExporter(SpanExporter):
    def export(self, spans):  # type: ignore[no-untyped-def]
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class ServerProcess:
    """The provider-compatible server in a child process on a free loopback port."""

    def __enter__(self) -> ServerProcess:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spendmeter.testing.server", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _pin(self.proc.pid, last=True)
        self.url = f"http://127.0.0.1:{port}"
        self.openai_base_url, self.anthropic_base_url = self.url + "/v1", self.url
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return self
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("provider server did not start") from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _pin(pid: int, last: bool) -> None:
    """Client on one core, server on another (when there are two): less noise from the scheduler."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) >= 2:
        os.sched_setaffinity(pid, {cores[-1]} if last else set(cores[:-1]))


def modes(srv: ServerProcess) -> dict[str, Callable[[int], None]]:
    oai = openai.OpenAI(base_url=srv.openai_base_url, api_key="sk", max_retries=0)
    aoai = openai.AsyncOpenAI(base_url=srv.openai_base_url, api_key="sk", max_retries=0)
    ant = anthropic.Anthropic(base_url=srv.anthropic_base_url, api_key="sk", max_retries=0)
    aant = anthropic.AsyncAnthropic(base_url=srv.anthropic_base_url, api_key="sk", max_retries=0)
    loop = asyncio.new_event_loop()  # one loop for the whole run: the async clients keep their connections

    def openai_sync(n: int) -> None:
        for _ in range(n):
            oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=HEADERS)

    def openai_stream(n: int) -> None:
        for _ in range(n):
            for _chunk in oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True,
                                                      stream_options={"include_usage": True}, extra_headers=HEADERS):
                pass

    def openai_async(n: int) -> None:
        async def run() -> None:
            for _ in range(n):
                await aoai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=HEADERS)

        loop.run_until_complete(run())

    def anthropic_sync(n: int) -> None:
        for _ in range(n):
            ant.messages.create(model="claude-3-haiku-20240307", max_tokens=100, messages=MSG, extra_headers=HEADERS)

    def anthropic_stream(n: int) -> None:
        for _ in range(n):
            with ant.messages.stream(model="claude-3-haiku-20240307", max_tokens=100, messages=MSG,
                                     extra_headers=HEADERS) as stream:
                for _event in stream:
                    pass

    def anthropic_async(n: int) -> None:
        async def run() -> None:
            for _ in range(n):
                await aant.messages.create(model="claude-3-haiku-20240307", max_tokens=100, messages=MSG,
                                           extra_headers=HEADERS)

        loop.run_until_complete(run())

    return {
        "openai sync": openai_sync,
        "openai async": openai_async,
        "openai stream": openai_stream,
        "anthropic sync": anthropic_sync,
        "anthropic async": anthropic_async,
        "anthropic stream": anthropic_stream,
    }


def timed(fn: Callable[[int], None], n: int) -> float:
    start = time.perf_counter()
    fn(n)
    return (time.perf_counter() - start) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per mode per round")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--target", type=float, default=0.03, help="report modes above this added-time ratio")
    args = parser.parse_args()

    _pin(0, last=False)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NullExporter()))
    with ServerProcess() as srv:
        spendmeter.init(registry=CollectorRegistry(), serve_metrics=False,
                        tracer_provider=None if os.environ.get("NOSPANS") else provider)
        results = []
        for name, fn in modes(srv).items():
            fn(20)  # warm-up: connections, caches, price resolution
            bare, inst = [], []
            for _ in range(args.rounds):
                patches.uninstrument()
                bare.append(timed(fn, args.calls))
                patches.instrument()
                inst.append(timed(fn, args.calls))
            # Paired rounds: the median of (instrumented - bare) per round resists drift better than
            # the difference of medians.
            b = statistics.median(bare)
            added = statistics.median(x - y for x, y in zip(inst, bare, strict=True))
            results.append({"mode": name, "bare_us": b * 1e6, "instrumented_us": (b + added) * 1e6,
                            "added_us": added * 1e6, "ratio": added / b})
        spendmeter.shutdown()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, " \
              f"openai {openai.__version__}, anthropic {anthropic.__version__}"
    print(f"spendmeter overhead per call vs bare SDK (median of {args.rounds} rounds x {args.calls} calls; {machine})")
    print(f"{'mode':18} {'bare µs':>9} {'with µs':>9} {'added µs':>9} {'added %':>8}")
    for r in results:
        flag = "  > target" if r["ratio"] > args.target else ""
        print(f"{r['mode']:18} {r['bare_us']:9.0f} {r['instrumented_us']:9.0f} {r['added_us']:9.0f} "
              f"{100 * r['ratio']:7.2f}%{flag}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": machine, "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
