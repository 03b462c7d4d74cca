"""CPU added per call by spendmeter's hook, with no network at all: the real SDKs on a canned in-memory
transport (httpx2.MockTransport), bare and instrumented interleaved in the same process, median CPU time of
the calling thread per call. This isolates our own work (hook, proxy, pricing, labels, metrics, spans) from
loopback HTTP noise, so it is the number to watch for regressions; `overhead.py` gives the end-to-end view.

    python benchmarks/hook_cost.py [--calls 400] [--rounds 9] [--json out.json]

Spans go to a TracerProvider with a no-op exporter (SimpleSpanProcessor, so ending a span is paid here),
metrics to a private Prometheus registry, pricing on.
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
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry

import spendmeter

MSG = [{"role": "user", "content": "How do I reset my password?"}]

CHAT = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Click reset."}}],
    "usage": {"prompt_tokens": 1200, "completion_tokens": 100, "total_tokens": 1300,
              "prompt_tokens_details": {"cached_tokens": 1024}},
}).encode()
CHAT_SSE = b"".join(
    b"data: " + json.dumps(c).encode() + b"\n\n"
    for c in [
        *({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
           "choices": [{"index": 0, "delta": {"content": w}}]} for w in ("Click ", "the ", "reset ", "link ", ".") * 4),
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini", "choices": [],
         "usage": {"prompt_tokens": 1200, "completion_tokens": 20, "total_tokens": 1220}},
    ]
) + b"data: [DONE]\n\n"
MESSAGE = json.dumps({
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Click reset."}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 176, "output_tokens": 100, "cache_read_input_tokens": 1024,
              "cache_creation_input_tokens": 0},
}).encode()


def _event(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


MESSAGE_SSE = b"".join([
    _event("message_start", {"type": "message_start", "message": {
        **json.loads(MESSAGE), "content": [], "stop_reason": None,
        "usage": {"input_tokens": 176, "output_tokens": 1, "cache_read_input_tokens": 1024}}}),
    _event("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}}),
    *(_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": w}}) for w in ("Click ", "reset ") * 10),
    _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
    _event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                             "usage": {"output_tokens": 20}}),
    _event("message_stop", {"type": "message_stop"}),
])


def _handler(request: httpx2.Request) -> httpx2.Response:
    body = json.loads(request.content or b"{}")
    if request.url.path.endswith("/chat/completions"):
        if body.get("stream"):
            return httpx2.Response(200, content=CHAT_SSE, headers={"content-type": "text/event-stream"})
        return httpx2.Response(200, content=CHAT, headers={"content-type": "application/json"})
    if body.get("stream"):
        return httpx2.Response(200, content=MESSAGE_SSE, headers={"content-type": "text/event-stream"})
    return httpx2.Response(200, content=MESSAGE, headers={"content-type": "application/json"})


class NullExporter(SpanExporter):
    def export(self, spans):  # type: ignore[no-untyped-def]
        return SpanExportResult.SUCCESS


def _modes() -> dict[str, Callable[[], object]]:
    transport = httpx2.MockTransport(_handler)
    oai = openai.OpenAI(api_key="sk", base_url="https://api.openai.com/v1", max_retries=0,
                        http_client=httpx2.Client(transport=transport))
    ant = anthropic.Anthropic(api_key="sk", max_retries=0, http_client=httpx2.Client(transport=transport))
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
