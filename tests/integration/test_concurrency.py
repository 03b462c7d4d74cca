"""8 threads and 200 asyncio tasks with distinct attributions: every Call carries its own."""

from __future__ import annotations

import asyncio
import threading

from spendmeter import attribute


def test_threads_keep_their_attribution(instrumented, oai, ant):
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with attribute(user=f"thread-{i}", feature=f"f{i % 3}"):
                for _ in range(5):
                    oai.chat.completions.create(
                        model="gpt-4o-mini",
                        messages=[{"role": "user", "content": f"{i}"}],
                        extra_headers={"x-fake-usage": f"input={i + 1},output=1"},
                    )
                    ant.messages.create(
                        model="claude-3-haiku-20240307",
                        max_tokens=5,
                        messages=[{"role": "user", "content": "x"}],
                        extra_headers={"x-fake-usage": f"input={i + 1},output=1"},
                    )
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(instrumented.calls) == 80
    for call in instrumented.calls:
        i = int(call.attribution.user.split("-")[1])
        assert call.usage.input == i + 1, "a call was attributed to another thread's user"
        assert call.attribution.feature == f"f{i % 3}"


async def test_asyncio_tasks_keep_their_attribution(instrumented, aoai, aant):
    async def task(i: int) -> None:
        with attribute(user=f"task-{i}"):
            if i % 2:
                stream = await aoai.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "x"}],
                    stream=True,
                    extra_headers={"x-fake-usage": f"input={i + 1},output=2"},
                )
                async for _ in stream:
                    await asyncio.sleep(0)
            else:
                await aant.messages.create(
                    model="claude-3-haiku-20240307",
                    max_tokens=5,
                    messages=[{"role": "user", "content": "x"}],
                    extra_headers={"x-fake-usage": f"input={i + 1},output=2"},
                )

    await asyncio.gather(*(task(i) for i in range(200)))
    assert len(instrumented.calls) == 200
    for call in instrumented.calls:
        assert call.usage.input == int(call.attribution.user.split("-")[1]) + 1
