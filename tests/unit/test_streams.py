"""The observe-only stream proxies, driven by fake SDK streams: exactly one finished Call, whatever happens."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import pytest

from spendmeter import recorder
from spendmeter.call import Attribution, Call
from spendmeter.instrumentation.streams import AsyncObservedStream, ObservedStream, StreamState
from spendmeter.providers.anthropic import MessageStreamUsage
from spendmeter.providers.openai import ChatStreamUsage, is_injected_usage_chunk

CHUNKS = [
    {"id": "c", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
    {"id": "c", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "lo"}}]},
    {"id": "c", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"id": "c", "model": "gpt-4o-mini", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}},
]


class FakeStream:
    """Stands in for openai.Stream: iterable, closable, a context manager."""

    def __init__(self, items, fail_after: int | None = None):
        self.items = items
        self.fail_after = fail_after
        self.closed = False
        self.response = "http-response"

    def __iter__(self):
        for i, item in enumerate(self.items):
            if self.fail_after is not None and i == self.fail_after:
                raise ConnectionError("peer closed connection")
            yield item

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FakeAsyncStream(FakeStream):
    def __aiter__(self):
        return self._agen()

    async def _agen(self):
        for i, item in enumerate(self.items):
            if self.fail_after is not None and i == self.fail_after:
                raise ConnectionError("peer closed connection")
            yield item

    async def close(self):
        self.closed = True


def _stream(_pipeline, items=CHUNKS, hide=None, fail_after=None, cls=ObservedStream, fake=FakeStream,
            read_later=False, acc=None):
    call = Call(
        provider="openai", operation="chat", request_model="gpt-4o-mini", attribution=Attribution(user="u"), stream=True
    )
    state = StreamState(call, acc or ChatStreamUsage(), hide, read_later)
    return cls(fake(items, fail_after), state), call


def test_full_stream_yields_every_chunk_and_finishes_once(collected, pipeline):
    stream, call = _stream(pipeline)
    assert list(stream) == CHUNKS
    assert collected.one() is call
    assert call.status == "ok" and call.end_reason == "completed"
    assert (call.usage.input, call.usage.output, call.usage.source) == (9, 2, "reported")
    stream.close()  # closing after the end changes nothing
    assert len(collected.calls) == 1


def test_injected_usage_chunk_is_hidden_but_counted(collected, pipeline):
    stream, _call = _stream(pipeline, hide=is_injected_usage_chunk)
    assert list(stream) == CHUNKS[:3]
    assert collected.one().usage.output == 2


def test_break_after_two_chunks_then_close(collected, pipeline):
    stream, call = _stream(pipeline)
    got = []
    for chunk in stream:
        got.append(chunk)
        if len(got) == 2:
            break
    assert collected.calls == []
    stream.close()
    assert stream.__wrapped__.closed
    assert collected.one().end_reason == "closed_early"
    assert call.usage.source == "missing"


def test_exception_mid_stream_is_reraised_and_recorded(collected, pipeline):
    stream, call = _stream(pipeline, fail_after=2)
    with pytest.raises(ConnectionError):
        list(stream)
    assert collected.one().status == "error"
    assert call.error_type == "ConnectionError"


def test_never_iterated_stream_closed_by_context_manager(collected, pipeline):
    stream, _call = _stream(pipeline)
    with stream as s:
        assert s is stream
    assert collected.one().end_reason == "closed_early"


def test_abandoned_stream_is_finished_by_gc_on_next_drain(collected, pipeline):
    finished_on: list[int] = []

    class ThreadOf:
        def on_call(self, call: Call) -> None:
            finished_on.append(threading.get_ident())

    pipeline.set(sinks=(collected, ThreadOf()))
    stream, _call = _stream(pipeline)
    next(iter(stream))
    del stream
    gc.collect()
    # The finalizer only queues: the call is finished by the finisher thread or by the next drain, never
    # inside the collection on this thread.
    assert threading.get_ident() not in finished_on
    recorder.drain()
    assert collected.one().end_reason == "abandoned"


def test_next_and_iteration_read_the_same_chunks_each_observed_once(collected, pipeline):
    stream, call = _stream(pipeline)
    first = next(stream)
    rest = list(stream)
    assert [first, *rest] == CHUNKS
    assert collected.one() is call
    assert (call.usage.input, call.usage.output, call.end_reason) == (9, 2, "completed")


def test_a_library_iterating_our_stream_keeps_it_alive_while_it_reads(collected, pipeline):
    """A library that wraps the stream we return and keeps only its iterator (google-genai does): the proxy
    must not be collected (and the call recorded as abandoned) while chunks are still being read."""

    def library_wrapper():
        yield from _stream(pipeline)[0]  # the proxy is a temporary: only its iterator is referenced

    wrapper = library_wrapper()
    first = next(wrapper)
    gc.collect()
    recorder.drain()
    assert collected.calls == []  # not abandoned: still being read
    assert [first, *wrapper] == CHUNKS
    call = collected.one()
    assert (call.end_reason, call.usage.output) == ("completed", 2)


@pytest.mark.parametrize("read_later", [False, True])
def test_every_ending_records_the_same_whether_facts_are_read_now_or_later(collected, pipeline, read_later):
    full, full_call = _stream(pipeline, read_later=read_later)
    list(full)
    failing, _ = _stream(pipeline, fail_after=3, read_later=read_later)
    with pytest.raises(ConnectionError):
        list(failing)
    early, _ = _stream(pipeline, read_later=read_later)
    next(early)
    early.close()
    dropped, _ = _stream(pipeline, read_later=read_later)
    next(dropped)
    del dropped
    gc.collect()
    recorder.drain()
    got = {c.end_reason: c for c in collected.calls}
    assert set(got) == {"completed", "error", "closed_early", "abandoned"}
    assert got["completed"] is full_call and (full_call.usage.input, full_call.usage.output) == (9, 2)
    assert got["error"].status == "error" and got["error"].error_type == "ConnectionError"
    assert got["error"].finish_reasons == ("stop",)  # what the stream said before it broke is kept
    assert got["closed_early"].usage.source == "missing" and got["closed_early"].model == "gpt-4o-mini"
    assert got["abandoned"].model == "gpt-4o-mini"


def test_a_stream_of_sdk_objects_has_its_facts_read_on_the_finisher_thread(collected, pipeline):
    threads: list[str] = []

    class Noting(ChatStreamUsage):
        def facts(self):
            threads.append(threading.current_thread().name)
            return super().facts()

    stream, call = _stream(pipeline, read_later=True, acc=Noting())
    list(stream)
    deadline = time.monotonic() + 5
    while not threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threads == ["spendmeter-finisher"]
    assert collected.one() is call and call.usage.output == 2


def test_proxy_keeps_sdk_attributes_and_type(pipeline):
    stream, _ = _stream(pipeline)
    assert isinstance(stream, FakeStream)
    assert stream.response == "http-response"


def test_32_threads_racing_to_finish_one_call(collected, pipeline):
    call = Call(provider="anthropic", operation="chat", request_model="m", attribution=Attribution())
    state = StreamState(call, MessageStreamUsage())
    barrier = threading.Barrier(32)

    def finish():
        barrier.wait()
        state.finish("completed")

    threads = [threading.Thread(target=finish) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(collected.calls) == 1


def test_broken_accumulator_switches_off_and_the_stream_goes_on(collected, pipeline):
    class Exploding(ChatStreamUsage):
        def observe(self, chunk):
            raise KeyError("odd payload")

    call = Call(provider="openai", operation="chat", request_model="m", attribution=Attribution(), stream=True)
    errors = []
    pipeline.set(count_error=lambda kind, n=1: errors.append(kind))
    stream = ObservedStream(FakeStream(CHUNKS), StreamState(call, Exploding()))
    assert list(stream) == CHUNKS
    assert collected.one().usage.source == "missing"
    assert errors == ["stream.observe"]


async def test_async_stream_full_and_error(collected, pipeline):
    stream, _call = _stream(pipeline, cls=AsyncObservedStream, fake=FakeAsyncStream)
    assert [c async for c in stream] == CHUNKS
    stream2, _call2 = _stream(pipeline, cls=AsyncObservedStream, fake=FakeAsyncStream, fail_after=1)
    with pytest.raises(ConnectionError):
        async for _ in stream2:
            pass
    assert [c.status for c in collected.calls] == ["ok", "error"]


async def test_async_stream_closed_early(collected, pipeline):
    stream, _call = _stream(pipeline, cls=AsyncObservedStream, fake=FakeAsyncStream)
    await stream.__anext__()
    await stream.close()
    await asyncio.sleep(0)
    assert collected.one().end_reason == "closed_early"


async def test_an_async_library_iterating_our_stream_keeps_it_alive_and_anext_reads_the_same(collected, pipeline):
    async def library_wrapper():
        async for chunk in _stream(pipeline, cls=AsyncObservedStream, fake=FakeAsyncStream)[0]:
            yield chunk  # the proxy is a temporary: only its iterator is referenced

    wrapper = library_wrapper()
    first = await wrapper.__anext__()
    gc.collect()
    recorder.drain()
    assert collected.calls == []
    assert [first, *[c async for c in wrapper]] == CHUNKS
    stream, _call = _stream(pipeline, cls=AsyncObservedStream, fake=FakeAsyncStream)
    first = await stream.__anext__()
    assert [first, *[c async for c in stream]] == CHUNKS
    assert [(c.end_reason, c.usage.output) for c in collected.calls] == [("completed", 2), ("completed", 2)]
