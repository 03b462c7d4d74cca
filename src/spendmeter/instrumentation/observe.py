"""What the SDK returned, observed: its own object after reading its facts, or an observe-only proxy around
its stream, or (for `with_raw_response` / `with_streaming_response`) a proxy whose `parse()` is observed.

`observe()` never raises and never changes what the caller gets.
"""

from __future__ import annotations

import inspect
import json
import weakref
from collections.abc import Callable
from typing import Any

import wrapt

from spendmeter import recorder
from spendmeter._contain import contain, report
from spendmeter.call import Call
from spendmeter.instrumentation.streams import AsyncObservedStream, ObservedStream, StreamState
from spendmeter.providers.base import ProviderAdapter, ResponseFacts

Hide = Callable[[Any], bool] | None


def observe(call: Call, result: Any, adapter: ProviderAdapter, hide: Hide, is_async: bool) -> Any:
    """The SDK's object as it came, or an observe-only proxy. Never raises."""
    facts: ResponseFacts | None = None
    try:
        if _is_raw_response(result):
            return _observe_raw(call, result, adapter, hide, is_async)
        if call.stream:
            state = StreamState(call, adapter.accumulator(), hide, getattr(adapter, "read_later", False))
            return (AsyncObservedStream if is_async else ObservedStream)(result, state)
        if getattr(adapter, "read_later", False):
            recorder.finish_reading(call, adapter.response, result)
            return result
        facts = adapter.response(result)
    except Exception:
        report("hook.observe")
    recorder.finish(call, facts)
    return result


_RAW_BY_TYPE: dict[type, bool] = {}


def _is_raw_response(result: Any) -> bool:
    """A `with_raw_response` / `with_streaming_response` wrapper rather than the SDK's object. Decided once per
    type: `hasattr` of an absent name on a pydantic model raises inside, on every call otherwise."""
    cls = type(result)
    raw = _RAW_BY_TYPE.get(cls)
    if raw is None:
        raw = hasattr(result, "http_response") and hasattr(result, "parse") and not hasattr(result, "choices")
        if len(_RAW_BY_TYPE) < 1000:
            _RAW_BY_TYPE[cls] = raw
    return raw


def _observe_raw(call: Call, result: Any, adapter: ProviderAdapter, hide: Hide, is_async: bool) -> Any:
    """Read usage from the body if it is already read, else observe what `parse()` gives the caller."""
    if not call.stream:
        try:
            content = result.http_response.content  # raises if the body was not read yet
        except Exception:
            content = None
        if content is not None:
            facts = None
            with contain("hook.raw_json"):
                facts = adapter.response(json.loads(content))
            recorder.finish(call, facts)
            return result
    state = StreamState(call, adapter.accumulator(), hide, getattr(adapter, "read_later", False))
    return ObservedRawResponse(result, call, adapter, hide, is_async, state)


class ObservedRawResponse(wrapt.ObjectProxy):  # type: ignore[misc]
    """A raw response whose body is still to come: `parse()` gives the object (or stream) we observe."""

    def __init__(self, wrapped: Any, call: Call, adapter: Any, hide: Hide, is_async: bool, state: StreamState):
        super().__init__(wrapped)
        self._self_args = (call, adapter, hide, is_async)
        self._self_finalizer = weakref.finalize(self, state.abandon)

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        call, adapter, hide, is_async = self._self_args
        parsed = self.__wrapped__.parse(*args, **kwargs)
        if inspect.isawaitable(parsed):
            return self._self_parse_async(parsed)
        self._self_finalizer.detach()
        return observe(call, parsed, adapter, hide, is_async)

    async def _self_parse_async(self, awaitable: Any) -> Any:
        call, adapter, hide, is_async = self._self_args
        parsed = await awaitable
        self._self_finalizer.detach()
        return observe(call, parsed, adapter, hide, is_async)
