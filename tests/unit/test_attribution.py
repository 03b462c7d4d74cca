"""attribute(): context manager and decorator, nesting, threads, asyncio tasks, baggage."""

from __future__ import annotations

import asyncio
import threading

from opentelemetry import baggage
from opentelemetry import context as otel_context

from spendmeter import attribute
from spendmeter.attribution import current
from spendmeter.call import Attribution


def test_nesting_inner_wins_and_outer_restored():
    with attribute(user="alice", feature="support"):
        with attribute(agent="router", feature="search"):
            assert current() == Attribution(user="alice", feature="search", agent="router")
        assert current() == Attribution(user="alice", feature="support")
    assert current() == Attribution()


def test_decorator_sync_and_async():
    @attribute(user="bob", agent="summarizer")
    def sync_fn():
        return current()

    @attribute(user="carol")
    async def async_fn():
        await asyncio.sleep(0)
        return current()

    assert sync_fn() == Attribution(user="bob", agent="summarizer")
    assert asyncio.run(async_fn()) == Attribution(user="carol")
    assert current() == Attribution()


def test_values_travel_as_baggage_and_incoming_baggage_is_read():
    with attribute(user="alice", conversation="c-42"):
        assert baggage.get_baggage("spendmeter.user") == "alice"
        assert baggage.get_baggage("spendmeter.conversation") == "c-42"
    ctx = baggage.set_baggage("spendmeter.feature", "billing")
    token = otel_context.attach(ctx)
    try:
        assert current().feature == "billing"
        with attribute(feature="support"):
            assert current().feature == "support"
    finally:
        otel_context.detach(token)


def test_threads_each_keep_their_own():
    seen: dict[int, Attribution] = {}
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        with attribute(user=f"u{i}"):
            barrier.wait()
            seen[i] = current()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {i: a.user for i, a in seen.items()} == {i: f"u{i}" for i in range(8)}


def test_asyncio_tasks_each_keep_their_own():
    async def task(i: int) -> str | None:
        with attribute(user=f"u{i}"):
            await asyncio.sleep(0)
            return current().user

    async def main():
        return await asyncio.gather(*(task(i) for i in range(200)))

    assert asyncio.run(main()) == [f"u{i}" for i in range(200)]
