"""CPU added per stream chunk by each of spendmeter's stream proxies: the SDKs' own chunk objects (parsed once,
from the canned streams in `_canned.py`) iterated through the proxy and bare, interleaved, min of the rounds.

    python benchmarks/chunks.py [--chunks 20000] [--rounds 9] [--json out.json]

Proxies: the sync and async stream proxies (what `create(stream=True)`, `with_raw_response.parse()` and
`with_streaming_response` give, and what Anthropic's `messages.stream()` manager reads its events from), over
openai chat chunks (with the usage chunk that spendmeter asked for hidden, as on api.openai.com) and over
anthropic events. Target: about 2 µs per chunk or less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

try:
    import spendmeter  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import anthropic
import openai
from _canned import CHAT_SSE, MESSAGE_SSE
from anthropic.types import RawMessageStreamEvent
from openai.types.chat import ChatCompletionChunk
from pydantic import TypeAdapter

from spendmeter.call import Attribution, Call
from spendmeter.instrumentation.streams import AsyncObservedStream, ObservedStream, StreamState
from spendmeter.providers.anthropic import MessageStreamUsage
from spendmeter.providers.openai import ChatStreamUsage
from spendmeter.providers.openai.request import hide_injected_usage
from spendmeter.runtime import pipeline as pl


def _events(sse: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in sse.decode().splitlines() if line.startswith("data: {")]


def _chat_chunks(n: int) -> list[Any]:
    one = [ChatCompletionChunk.model_validate(e) for e in _events(CHAT_SSE)]
    body, usage = one[:-1], one[-1]
    return [*(body * (n // len(body) + 1))[: n - 1], usage]


def _anthropic_events(n: int) -> list[Any]:
    adapter = TypeAdapter(RawMessageStreamEvent)
    one = [adapter.validate_python(e) for e in _events(MESSAGE_SSE)]
    start, middle, end = one[:2], one[2:-2], one[-2:]
    return [*start, *(middle * (n // len(middle) + 1))[: n - 4], *end]


class _Stream:
    """Stands for the SDK's stream object: iterable once, closable."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __iter__(self) -> Any:
        return iter(self.items)

    def __aiter__(self) -> Any:
        return self._agen()

    async def _agen(self) -> Any:
        for item in self.items:
            yield item

    def close(self) -> None:
        pass


def _call() -> Call:
    return Call(provider="openai", operation="chat", request_model="gpt-4o-mini", attribution=Attribution(),
                stream=True)


def _sync(items: list[Any], acc: Any, hide: Any) -> float:
    start = time.thread_time_ns()
    for _ in ObservedStream(_Stream(items), StreamState(_call(), acc, hide)):
        pass
    return time.thread_time_ns() - start


def _sync_bare(items: list[Any]) -> float:
    start = time.thread_time_ns()
    for _ in _Stream(items):
        pass
    return time.thread_time_ns() - start


def _async(items: list[Any], acc: Any, hide: Any) -> float:
    async def run() -> float:
        start = time.thread_time_ns()
        async for _ in AsyncObservedStream(_Stream(items), StreamState(_call(), acc, hide)):
            pass
        return time.thread_time_ns() - start

    return asyncio.run(run())


def _async_bare(items: list[Any]) -> float:
    async def run() -> float:
        start = time.thread_time_ns()
        async for _ in _Stream(items):
            pass
        return time.thread_time_ns() - start

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json")
    args = parser.parse_args()
    pl.install(pl.Pipeline())  # finishing goes nowhere: only the per-chunk path is measured
    chat, events = _chat_chunks(args.chunks), _anthropic_events(args.chunks)
    cases = {
        "openai chat, sync": (chat, ChatStreamUsage, hide_injected_usage, False),
        "openai chat, async": (chat, ChatStreamUsage, hide_injected_usage, True),
        "anthropic events, sync": (events, MessageStreamUsage, None, False),
        "anthropic events, async": (events, MessageStreamUsage, None, True),
    }
    results = {}
    for name, (items, acc, hide, is_async) in cases.items():
        added = []
        for _ in range(args.rounds):
            bare = _async_bare(items) if is_async else _sync_bare(items)
            observed = _async(items, acc(), hide) if is_async else _sync(items, acc(), hide)
            added.append((observed - bare) / len(items) / 1000)
        median = sorted(added)[len(added) // 2]
        results[name] = {"us_per_chunk_min": round(min(added), 2), "us_per_chunk_median": round(median, 2)}
    cpu = platform.processor() or platform.machine()
    machine = (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, openai {openai.__version__}, "
               f"anthropic {anthropic.__version__}")
    print(f"per-chunk cost of the stream proxies (µs of CPU added per chunk, {args.chunks} chunks; {machine})")
    print(f"{'proxy':<26}{'min':>8}{'median':>9}")
    for name, r in results.items():
        print(f"{name:<26}{r['us_per_chunk_min']:>8}{r['us_per_chunk_median']:>9}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
