"""The patched methods: provider-blind, each a few lines around the SDK call; every fact comes from the
adapter the patch table gives them, and every record goes through the recorder.

The `try` around the SDK call holds the SDK call and nothing else, so a bug of ours can never turn a
successful call into an exception; `observe()` never raises and returns the SDK's own object, or an
observe-only proxy around its stream.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import wrapt

from spendmeter import recorder
from spendmeter._contain import contain, ok, report
from spendmeter.call import Call
from spendmeter.instrumentation.observe import observe
from spendmeter.providers.base import ItemsAdapter, ProviderAdapter, RequestFacts

Hook = Callable[..., Any]


def _begin(
    adapter: ProviderAdapter, resource: Any, kwargs: dict[str, Any], stream: bool = False
) -> tuple[Call, RequestFacts] | None:
    """Request facts → `recorder.start()`. None when we failed internally; BudgetExceeded passes through."""
    if recorder.current_call.get() is not None:
        return None  # made inside a call we already record (a LiteLLM call using the SDK): that is the one Call
    try:
        facts = adapter.request(resource, kwargs, recorder.options())
        if stream:
            facts.stream = True
        ok("hook.request")
    except Exception:
        report("hook.request")
        return None
    call = recorder.start(facts)  # may raise BudgetExceeded, on purpose
    return None if call is None else (call, facts)


def call_hook(adapter: ProviderAdapter) -> Hook:
    """create / parse (sync): one Call per invocation."""

    def hook(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        begun = _begin(adapter, instance, kwargs)
        if begun is None:
            return wrapped(*args, **kwargs)
        call, facts = begun
        send = kwargs if facts.send_kwargs is None else facts.send_kwargs
        try:
            with recorder.active(call):
                result = wrapped(*args, **send)
        except BaseException as exc:  # cancellation included
            recorder.fail(call, exc)
            raise
        return observe(call, result, adapter, facts.hide, is_async=False)

    return hook


def async_call_hook(adapter: ProviderAdapter) -> Hook:
    """create / parse (async)."""

    async def hook(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        begun = _begin(adapter, instance, kwargs)
        if begun is None:
            return await wrapped(*args, **kwargs)
        call, facts = begun
        send = kwargs if facts.send_kwargs is None else facts.send_kwargs
        try:
            with recorder.active(call):
                result = await wrapped(*args, **send)
        except BaseException as exc:
            recorder.fail(call, exc)
            raise
        return observe(call, result, adapter, facts.hide, is_async=True)

    return hook


def stream_manager_hook(adapter: ProviderAdapter, is_async: bool) -> Hook:
    """A `.stream()` that returns a manager (anthropic `messages.stream()`): attribution is snapshotted now,
    the call starts when the manager is entered (no request is sent before). The manager's raw stream is
    observed, so text_stream, event iteration and get_final_message all feed the same accumulator."""

    def hook(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        manager = wrapped(*args, **kwargs)
        with contain("hook.stream_manager"):
            name = next(n for n in vars(manager) if n.endswith("__api_request"))
            original = getattr(manager, name)
            snapshot = contextvars.copy_context()

            def begin() -> tuple[Call, RequestFacts] | None:
                return snapshot.run(_begin, adapter, instance, kwargs, True)

            request = _async_request(original, begin, adapter) if is_async else _sync_request(original, begin, adapter)
            setattr(manager, name, request)
        return manager

    return hook


def _sync_request(original: Callable[[], Any], begin: Callable[[], Any], adapter: ProviderAdapter) -> Any:
    def request() -> Any:
        begun = begin()
        if begun is None:
            return original()
        call, _facts = begun
        try:
            with recorder.active(call):
                raw = original()
        except BaseException as exc:
            recorder.fail(call, exc)
            raise
        return observe(call, raw, adapter, None, is_async=False)

    return request


def _async_request(original: Any, begin: Callable[[], Any], adapter: ProviderAdapter) -> Any:
    async def request() -> Any:
        begun = begin()
        if begun is None:
            return await original
        call, _facts = begun
        try:
            with recorder.active(call):
                raw = await original
        except BaseException as exc:
            recorder.fail(call, exc)
            raise
        return observe(call, raw, adapter, None, is_async=True)

    return request()


def attempt_hook(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
    """`BaseClient._build_request`, once per HTTP attempt: count SDK retries and note the server."""
    request = wrapped(*args, **kwargs)
    call = recorder.current_call.get()
    if call is not None:
        try:  # a bare try on this per-attempt path (no containment object), counted like any other
            call.attempts = int(kwargs.get("retries_taken", 0)) + 1
            url = getattr(request, "url", None)
            if url is not None:
                call.server_address = str(url.host)
                call.server_port = url.port
            ok("hook.attempt")
        except Exception:
            report("hook.attempt")
    return request


# -- results that are calls of their own (anthropic message batch results) -----------------------------------
def _item_call(resource: Any, adapter: ItemsAdapter, item: Any) -> None:
    with contain("hook.result_item"):
        call = recorder.start(adapter.item_request(resource, item, recorder.options()), check_budget=False)
        if call is not None:
            recorder.finish(call, adapter.item_response(item))


class ObservedResults(wrapt.ObjectProxy):  # type: ignore[misc]
    def __init__(self, wrapped: Any, resource: Any, adapter: ItemsAdapter) -> None:
        super().__init__(wrapped)
        self._self_source = (resource, adapter)

    def __iter__(self) -> Any:
        resource, adapter = self._self_source
        for item in self.__wrapped__:
            _item_call(resource, adapter, item)
            yield item


class AsyncObservedResults(ObservedResults):
    async def __aiter__(self) -> Any:
        resource, adapter = self._self_source
        async for item in self.__wrapped__:
            _item_call(resource, adapter, item)
            yield item


def results_hook(adapter: ItemsAdapter) -> Hook:
    """A method returning an iterable of finished requests: each item is one call."""

    def hook(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        return ObservedResults(wrapped(*args, **kwargs), instance, adapter)

    return hook


def async_results_hook(adapter: ItemsAdapter) -> Hook:
    async def hook(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        return AsyncObservedResults(await wrapped(*args, **kwargs), instance, adapter)

    return hook
