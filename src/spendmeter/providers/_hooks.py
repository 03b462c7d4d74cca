"""The patched methods: each is a few lines around the SDK call, and all the work goes through the recorder.

The `try` around the SDK call holds the SDK call and nothing else, so a bug of ours can never turn a
successful call into an exception; `observe()` never raises and returns the SDK's own object, or an
observe-only proxy around its stream.
"""

from __future__ import annotations

import contextvars
import inspect
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wrapt

from spendmeter.call import Call
from spendmeter.providers import anthropic as anthropic_adapter
from spendmeter.providers import openai as openai_adapter
from spendmeter.providers._fields import get, given
from spendmeter.providers.streams import AsyncObservedStream, ObservedStream, StreamState
from spendmeter.recorder import RECORDER, current_call


@dataclass(frozen=True)
class Prepared:
    call: Call
    kwargs: dict[str, Any]
    hide: Callable[[Any], bool] | None


def _max_tokens(kwargs: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_output_tokens", "max_tokens"):
        value = given(kwargs.get(name))
        if isinstance(value, int):
            return value
    return None


def _capture(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    if not RECORDER.capture_content:
        return None
    for name in ("messages", "input", "prompt"):
        value = given(kwargs.get(name))
        if value is not None:
            return {"input": value, "system": given(kwargs.get("system"))}
    return None


def _prepare(provider_sdk: str, adapter: Any, instance: Any, kwargs: dict[str, Any], **extra: Any) -> Prepared | None:
    """Request facts → `recorder.start()`. None when we failed internally; BudgetExceeded passes through."""
    facts: dict[str, Any] | None = None
    new_kwargs, hide = kwargs, None
    with RECORDER.guard("hook.prepare"):
        model = given(kwargs.get("model"))
        stream = bool(given(kwargs.get("stream")))
        if provider_sdk == "openai":
            provider = openai_adapter.provider_of(instance)
            user = given(kwargs.get("user")) or given(kwargs.get("safety_identifier"))
            deployment = openai_adapter.deployment_of(instance, kwargs) if provider == openai_adapter.AZURE else None
            if openai_adapter.wants_usage_injection(instance, kwargs, RECORDER.usage_hosts):
                new_kwargs = openai_adapter.with_usage_requested(kwargs)
                hide = openai_adapter.is_injected_usage_chunk
        else:
            provider = anthropic_adapter.provider_of(instance)
            user = anthropic_adapter.request_user(kwargs)
            deployment = None
        facts = {
            "provider": provider,
            "operation": adapter.operation,
            "request_model": str(model) if model is not None else None,
            "stream": stream or extra.get("stream", False),
            "request_user": str(user) if user else None,
            "request_service_tier": given(kwargs.get("service_tier")),
            "request_max_tokens": _max_tokens(kwargs),
            "deployment": deployment,
            "capture": _capture(kwargs),
        }
    if facts is None:
        return None
    call = RECORDER.start(**facts)  # may raise BudgetExceeded, on purpose
    return None if call is None else Prepared(call, new_kwargs, hide)


# -- observing what the SDK returned -----------------------------------------------------------------


def observe(call: Call, result: Any, adapter: Any, hide: Callable[[Any], bool] | None, is_async: bool) -> Any:
    """The SDK's object as it came, or an observe-only proxy. Never raises."""
    try:
        if _is_raw_response(result):
            return _observe_raw(call, result, adapter, hide, is_async)
        if call.stream:
            state = StreamState(RECORDER, call, adapter.accumulator())
            proxy = AsyncObservedStream if is_async else ObservedStream
            return proxy(result, state, hide)
        adapter.finish_into(result, call)
        RECORDER.finish(call)
    except Exception:
        RECORDER.internal_error("hook.observe")
        RECORDER.finish(call)
    return result


def _is_raw_response(result: Any) -> bool:
    return hasattr(result, "http_response") and hasattr(result, "parse") and not hasattr(result, "choices")


def _observe_raw(call: Call, result: Any, adapter: Any, hide: Callable[[Any], bool] | None, is_async: bool) -> Any:
    """`with_raw_response` / `with_streaming_response`: read usage from the body if it is already read,
    else observe what `parse()` gives the caller."""
    if not call.stream:
        try:
            content = result.http_response.content  # raises if the body was not read yet
        except Exception:
            content = None
        if content is not None:
            import json

            with RECORDER.guard("hook.raw_json"):
                adapter.finish_into(json.loads(content), call)
            RECORDER.finish(call)
            return result
    state = StreamState(RECORDER, call, adapter.accumulator())
    return ObservedRawResponse(result, call, adapter, hide, is_async, state)


class ObservedRawResponse(wrapt.ObjectProxy):  # type: ignore[misc]
    """A raw response whose body is still to come: `parse()` gives the object (or stream) we observe."""

    def __init__(self, wrapped: Any, call: Call, adapter: Any, hide: Any, is_async: bool, state: StreamState):
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


# -- the patched methods -----------------------------------------------------------------------------


def call_hook(provider_sdk: str, adapter: Any) -> Callable[..., Any]:
    """create / parse (sync): one Call per invocation."""

    def hook(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        prepared = _prepare(provider_sdk, adapter, instance, kwargs)
        if prepared is None:
            return wrapped(*args, **kwargs)
        call = prepared.call
        try:
            with RECORDER.active(call):
                result = wrapped(*args, **prepared.kwargs)
        except BaseException as exc:  # cancellation included
            RECORDER.fail(call, exc)
            raise
        return observe(call, result, adapter, prepared.hide, is_async=False)

    return hook


def async_call_hook(provider_sdk: str, adapter: Any) -> Callable[..., Any]:
    """create / parse (async)."""

    async def hook(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        prepared = _prepare(provider_sdk, adapter, instance, kwargs)
        if prepared is None:
            return await wrapped(*args, **kwargs)
        call = prepared.call
        try:
            with RECORDER.active(call):
                result = await wrapped(*args, **prepared.kwargs)
        except BaseException as exc:
            RECORDER.fail(call, exc)
            raise
        return observe(call, result, adapter, prepared.hide, is_async=True)

    return hook


def stream_manager_hook(provider_sdk: str, adapter: Any, is_async: bool) -> Callable[..., Any]:
    """anthropic `messages.stream()`: attribution is snapshotted now, the call starts when the manager is
    entered (no request is sent before). The manager's raw stream is observed, so text_stream, event
    iteration and get_final_message all feed the same accumulator."""

    def hook(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        manager = wrapped(*args, **kwargs)
        with RECORDER.guard("hook.stream_manager"):
            name = next(n for n in vars(manager) if n.endswith("__api_request"))
            original = getattr(manager, name)
            snapshot = contextvars.copy_context()

            def start() -> Prepared | None:
                return snapshot.run(_prepare, provider_sdk, adapter, instance, kwargs, stream=True)

            setattr(manager, name, _async_request(original, start) if is_async else _sync_request(original, start))
        return manager

    return hook


def _sync_request(original: Callable[[], Any], start: Callable[[], Prepared | None]) -> Callable[[], Any]:
    def request() -> Any:
        prepared = start()
        if prepared is None:
            return original()
        call = prepared.call
        try:
            with RECORDER.active(call):
                raw = original()
        except BaseException as exc:
            RECORDER.fail(call, exc)
            raise
        return observe(call, raw, anthropic_adapter.MessagesAdapter(), None, is_async=False)

    return request


def _async_request(original: Any, start: Callable[[], Prepared | None]) -> Any:
    async def request() -> Any:
        prepared = start()
        if prepared is None:
            return await original
        call = prepared.call
        try:
            with RECORDER.active(call):
                raw = await original
        except BaseException as exc:
            RECORDER.fail(call, exc)
            raise
        return observe(call, raw, anthropic_adapter.MessagesAdapter(), None, is_async=True)

    return request()


def attempt_hook(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
    """`BaseClient._build_request`, once per HTTP attempt: count SDK retries and note the server."""
    request = wrapped(*args, **kwargs)
    call = current_call.get()
    if call is not None:
        with RECORDER.guard("hook.attempt"):
            call.attempts = int(kwargs.get("retries_taken", 0)) + 1
            url = getattr(request, "url", None)
            if url is not None:
                call.server_address = str(url.host)
                call.server_port = url.port
    return request


# -- anthropic message batch results: each succeeded result is one call at batch rates ----------------


def _batch_call(item: Any) -> None:
    with RECORDER.guard("hook.batch_result"):
        message = get(get(item, "result"), "message")
        call = RECORDER.start("anthropic", "messages", get(message, "model"), batch=True, check_budget=False)
        if call is not None:
            anthropic_adapter.batch_result_into(item, call)
            RECORDER.finish(call)


class ObservedResults(wrapt.ObjectProxy):  # type: ignore[misc]
    def __iter__(self) -> Any:
        for item in self.__wrapped__:
            _batch_call(item)
            yield item


class AsyncObservedResults(wrapt.ObjectProxy):  # type: ignore[misc]
    async def __aiter__(self) -> Any:
        async for item in self.__wrapped__:
            _batch_call(item)
            yield item


def batch_results_hook(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
    return ObservedResults(wrapped(*args, **kwargs))


async def async_batch_results_hook(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
    return AsyncObservedResults(await wrapped(*args, **kwargs))
