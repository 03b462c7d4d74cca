"""CPU added per call by spendmeter's hook, with no network at all: the real SDKs on a canned in-memory
transport (httpx2.MockTransport), bare and instrumented interleaved in the same process, median CPU time of
the calling thread per call. This isolates our own work (hook, proxy, pricing, labels, metrics, spans) from
loopback HTTP noise, so it is the number to watch for regressions; `overhead.py` gives the end-to-end view.

    python benchmarks/hook_cost.py [--calls 400] [--rounds 9] [--json out.json]

Spans go to a TracerProvider with a no-op exporter (SimpleSpanProcessor), metrics to a private Prometheus
registry, pricing on. The anthropic SDK's own span per call is off on the client (`open_telemetry={"traces":
False}`), as in `peers.py`: left on, it does more work whenever any span is current (ours, or a span of the
application's), 80–110 µs here, which is the SDK's cost, not the hook's.
Only the calling thread is timed: what spendmeter finishes on its background thread (pricing, metrics, span
end) is not in these figures; each block is flushed after its timing. `peers.py` gives process CPU (every
thread) beside it, and the peers in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import anthropic
import httpx2
import openai
from _canned import MSG, handler  # benchmarks/_canned.py, beside this script
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry

import spendmeter

_handler = handler(httpx2)


class NullExporter(SpanExporter):
    def export(self, spans):  # type: ignore[no-untyped-def]
        return SpanExportResult.SUCCESS


def _modes() -> dict[str, Callable[[], object]]:
    transport = httpx2.MockTransport(_handler)
    oai = openai.OpenAI(api_key="sk", base_url="https://api.openai.com/v1", max_retries=0,
                        http_client=httpx2.Client(transport=transport))
    ant = anthropic.Anthropic(api_key="sk", max_retries=0, http_client=httpx2.Client(transport=transport),
                              open_telemetry={"traces": False})
    return {
        "openai sync": lambda: oai.chat.completions.create(model="gpt-4o-mini", messages=MSG),
        "openai stream": lambda: list(oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)),
        "anthropic sync": lambda: ant.messages.create(model="claude-sonnet-4-5", max_tokens=200, messages=MSG),
        "anthropic stream": lambda: list(
            ant.messages.create(model="claude-sonnet-4-5", max_tokens=200, messages=MSG, stream=True)
        ),
    }


def _cpu_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.thread_time_ns()
    for _ in range(calls):
        fn()
    return (time.thread_time_ns() - start) / calls / 1000  # µs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json")
    args = parser.parse_args()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(NullExporter()))
    spendmeter.init(registry=CollectorRegistry(), serve_metrics=False, tracer_provider=tracer_provider)
    modes = _modes()
    results = {}
    for name, fn in modes.items():
        for _ in range(50):  # warm caches, price vectors, label children
            fn()
        bare, instrumented = [], []
        for _ in range(args.rounds):
            spendmeter.uninstrument()
            bare.append(_cpu_per_call(fn, args.calls))
            spendmeter.instrument()
            instrumented.append(_cpu_per_call(fn, args.calls))
            spendmeter.flush()  # the finisher's work for this block, outside the timing
        b, i = statistics.median(bare), statistics.median(instrumented)
        results[name] = {"bare_us": round(b, 1), "instrumented_us": round(i, 1), "added_us": round(i - b, 1),
                         "ratio": round(i / b, 3)}
    spendmeter.shutdown()
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"hook cost (median CPU µs per call of the calling thread; {machine})")
    print(f"{'mode':<18}{'bare':>10}{'spendmeter':>12}{'added':>9}{'ratio':>8}")
    for name, r in results.items():
        print(f"{name:<18}{r['bare_us']:>10}{r['instrumented_us']:>12}{r['added_us']:>9}{r['ratio']:>8}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
