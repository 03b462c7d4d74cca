"""Pricing hot path: µs per `PriceBook.price()` call with warm caches (target: <= 5 µs amortized).

Run: `python benchmarks/pricing.py` (adds ./src to sys.path when spendmeter is not installed).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

try:
    import spendmeter  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from spendmeter.call import Attribution, Call, Usage
from spendmeter.pricing import load_pricebook, price_call

WORKLOAD = [  # (provider, model, usage, tier, batch)
    ("openai", "gpt-4o-mini", Usage(input=176, cache_read=1024, output=100), None, False),
    ("openai", "gpt-5", Usage(input=8, output=82, reasoning=64), "priority", False),
    ("openai", "gpt-4.1-nano", Usage(input=18, output=79), "default", False),
    ("anthropic", "claude-3-5-sonnet-20240620", Usage(input=20, cache_write_5m=1163, output=300), None, False),
    ("anthropic", "claude-sonnet-4-20250514", Usage(input=250_000, output=1_000), None, False),
    ("aws.bedrock", "us.anthropic.claude-3-haiku-20240307-v1:0", Usage(input=17, output=171), None, True),
    ("openai", "text-embedding-ada-002", Usage(input=8), None, False),
]


def bench(n: int) -> None:
    t0 = time.perf_counter()
    book = load_pricebook()
    load_ms = (time.perf_counter() - t0) * 1000

    when = datetime(2026, 3, 1, 12, tzinfo=UTC)
    t0 = time.perf_counter()
    for provider, model, usage, tier, batch in WORKLOAD:  # first call per key resolves the price vector
        book.price(provider, model, usage, tier=tier, batch=batch, when=when)
    cold_us = (time.perf_counter() - t0) / len(WORKLOAD) * 1e6

    price = book.price
    rounds = max(1, n // len(WORKLOAD))
    for label, when_arg in (("when=datetime", when), ("when=None (now)", None)):
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(rounds):
                for provider, model, usage, tier, batch in WORKLOAD:
                    price(provider, model, usage, tier=tier, batch=batch, when=when_arg)
            best = min(best, (time.perf_counter() - t0) / (rounds * len(WORKLOAD)) * 1e6)
        print(f"price() warm, {label:<16} {best:6.2f} µs/call (best of 5 x {rounds * len(WORKLOAD)} calls)")

    call = Call(provider="openai", operation="chat", request_model="gpt-4o-mini", attribution=Attribution(),
                started_at=when)
    call.usage = WORKLOAD[0][2]
    t0 = time.perf_counter()
    for _ in range(n):
        price_call(book, call)
    print(f"price_call() warm               {(time.perf_counter() - t0) / n * 1e6:6.2f} µs/call")
    print(f"first call per key (resolve)    {cold_us:6.1f} µs/call")
    print(f"load_pricebook()                {load_ms:6.1f} ms (incl. genai-prices data import on first load)")


if __name__ == "__main__":
    print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
          f"python {platform.python_version()} ({platform.python_implementation()})")
    bench(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
