"""Observe-only stream proxies: they give the caller exactly what the SDK yields and finish the Call once.

`ObservedStream` / `AsyncObservedStream` sit on `wrapt.ObjectProxy`, so `isinstance(s, openai.Stream)` still
holds and every attribute the SDK object has is still there. They override iteration, `close` and the
context-manager exit, and nothing else. Provider knowledge lives in an accumulator (spendmeter.providers) that
keeps counters, never text. The only chunk ever withheld is a usage-only chunk that we asked for ourselves
(`hide(chunk)` says which; it is `None` unless we changed the request).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import wrapt

from spendmeter import recorder
from spendmeter._contain import contain, report
from spendmeter.call import Call, EndReason
from spendmeter.providers.base import Accumulator, ResponseFacts


class StreamState:
    """Everything needed to finish the call, and nothing that refers back to the proxy (so GC can run).

    `read_later`: the accumulator holds only the SDK's own objects, so its facts are read on the finisher
    thread, not on the caller's."""

    __slots__ = ("acc", "broken", "call", "hide", "read_later")

    def __init__(
        self, call: Call, acc: Accumulator, hide: Callable[[Any], bool] | None = None, read_later: bool = False
    ) -> None:
        self.call = call
        self.acc = acc
        self.hide = hide  # None unless we changed the request (asked a stream for its usage)
        self.broken = False  # the accumulator failed once: stop feeding it, the stream goes on
        self.read_later = read_later

    def facts(self) -> ResponseFacts:
        if not self.broken:
            with contain("stream.facts"):
                return self.acc.facts()
        return recorder.missing()

    def finish(self, reason: EndReason, exc: BaseException | None = None) -> None:
        """Finish the call at most once, whichever of end / error / close / GC comes first."""
        if self.call.once.locked():
            return
        if exc is not None:
            reason = "error"
        if self.read_later:
            recorder.finish_reading(self.call, StreamState.facts, self, end_reason=reason, error=exc)
        else:
            recorder.finish(self.call, self.facts(), end_reason=reason, error=exc)

    def abandon(self) -> None:
        """Finalizer: garbage collection found the stream unfinished. No sink work here, only a queue put."""
        if self.call.once.locked():
            return
        if self.read_later:
            recorder.abandoned(self.call, self, StreamState.facts)
            return
        try:
            facts = self.acc.facts() if not self.broken else None
        except Exception:  # pragma: no cover - a finalizer must never raise
            facts = None
        recorder.abandoned(self.call, facts if facts is not None else recorder.missing())


class _Observed(wrapt.ObjectProxy):  # type: ignore[misc]
    """What the sync and async proxies share: the state and the once-only finish. The per-chunk work runs in
    a generator with everything in its locals (no attribute of the proxy is read per chunk): iterating the
    proxy gives one that holds the proxy while it runs; `next()` on the proxy reads from one the proxy holds.
    Both read the same SDK iterator, so each chunk is observed once whichever way it is read."""

    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state
        self._self_source: Any = None  # the SDK's own iterator, shared by every way of reading this proxy
        self._self_chunks: Any = None  # what `next()` on the proxy reads from
        # The finalizer holds the state, never the proxy, so the proxy can be collected.
        self._self_finalizer = weakref.finalize(self, state.abandon)

    def _self_done(self, reason: EndReason, exc: BaseException | None = None) -> None:
        self._self_finalizer.detach()
        self._self_state.finish(reason, exc)


def _keep(item: Any, state: StreamState, observe: Callable[[Any], None], hide: Callable[[Any], bool] | None) -> bool:
    """Observe one chunk; False only for a usage chunk that exists because we asked for it."""
    if not state.broken:
        try:
            observe(item)
        except Exception:
            state.broken = True
            report("stream.observe")
    return hide is None or not hide(item)


def _ended(state: StreamState, finalizer: weakref.finalize, exc: BaseException | None = None) -> None:
    finalizer.detach()
    state.finish("completed" if exc is None else "error", exc)


# The per-chunk path. Module functions, not methods, and never stored on the proxy while they hold it: a
# dropped stream is freed at once (no reference cycle), so its finalizer records it as abandoned. `owner` is
# the proxy, kept alive while a `for` loop holds only the generator (a library iterating our stream).
def _observed_chunks(chunks: Any, state: StreamState, finalizer: weakref.finalize, owner: Any = None) -> Any:
    observe, hide = state.acc.observe, state.hide
    while True:
        try:
            item = next(chunks)
        except StopIteration:
            _ended(state, finalizer)
            return
        except BaseException as exc:
            _ended(state, finalizer, exc)
            raise
        if _keep(item, state, observe, hide):
            yield item


async def _async_observed_chunks(
    chunks: Any, state: StreamState, finalizer: weakref.finalize, owner: Any = None
) -> Any:
    observe, hide = state.acc.observe, state.hide
    while True:
        try:
            item = await chunks.__anext__()
        except StopAsyncIteration:
            _ended(state, finalizer)
            return
        except BaseException as exc:
            _ended(state, finalizer, exc)
            raise
        if _keep(item, state, observe, hide):
            yield item


class ObservedStream(_Observed):
    """A sync SDK stream, observed. Yields exactly what the SDK yields."""

    def __iter__(self) -> Any:
        return _observed_chunks(self._self_iterator(), self._self_state, self._self_finalizer, self)

    def __next__(self) -> Any:
        if self._self_chunks is None:
            self._self_chunks = _observed_chunks(self._self_iterator(), self._self_state, self._self_finalizer)
        return next(self._self_chunks)

    def _self_iterator(self) -> Any:
        if self._self_source is None:
            self._self_source = iter(self.__wrapped__)
        return self._self_source

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_done("closed_early")

    def __enter__(self) -> ObservedStream:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_done("closed_early")


class AsyncObservedStream(_Observed):
    """An async SDK stream, observed. Yields exactly what the SDK yields."""

    def __aiter__(self) -> Any:
        return _async_observed_chunks(self._self_iterator(), self._self_state, self._self_finalizer, self)

    async def __anext__(self) -> Any:
        if self._self_chunks is None:
            self._self_chunks = _async_observed_chunks(self._self_iterator(), self._self_state,
                                                       self._self_finalizer)
        return await self._self_chunks.__anext__()

    def _self_iterator(self) -> Any:
        if self._self_source is None:
            self._self_source = self.__wrapped__.__aiter__()
        return self._self_source

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_done("closed_early")

    async def __aenter__(self) -> AsyncObservedStream:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_done("closed_early")
