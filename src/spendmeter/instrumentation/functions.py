"""Patches for libraries whose public API is module functions (LiteLLM's `litellm.completion` & co.), and two
strategies that wrap other patches: `Deferred` (apply once the SDK is imported) and `FirstOf` (the first row
that exists in the installed version).

`FunctionPatch` replaces `module.name` in the listed modules (for LiteLLM only the public package: its own
modules call each other through their module globals, and those stay LiteLLM's). `from litellm import
completion` done *after* the patch gets the wrapper; a name bound before it keeps the original, so
`spendmeter.init()` goes first, as with any import-time instrumentation. `Deferred` is why that is cheap:
importing LiteLLM takes seconds (and, without `LITELLM_LOCAL_MODEL_COST_MAP`, tries the network), so
`instrument()` never imports it; a post-import hook patches it the moment the application does.

The hooks have the shape of `hooks.call_hook`, plus one rule: a library call owns every LLM call made while it
runs. LiteLLM's `acompletion` runs `completion` in a thread with the context copied, its Responses bridge
calls `litellm.completion`, and some routes call the openai SDK's patched resource methods: the outer call is
the one Call, the inner ones are bare (`recorder.current_call` says an outer call is active).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wrapt

from spendmeter import recorder
from spendmeter._contain import contain
from spendmeter.call import Call
from spendmeter.instrumentation.observe import observe
from spendmeter.providers.base import RequestFacts

_MARK = "_self_spendmeter"


@dataclass(frozen=True)
class FunctionPatch:
    """Wrap the function `name` with `hook` in each of `modules` that exports the same function object."""

    sdk: str
    modules: tuple[str, ...]  # the modules whose attribute is replaced (where it is the same function)
    name: str
    hook: Callable[..., Any]

    def _loaded(self) -> list[Any]:
        """The modules exporting the function; a module a later version moved or dropped is skipped."""
        found = []
        for module_name in self.modules:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            if callable(getattr(module, self.name, None)):
                found.append(module)
        return found

    def apply(self) -> bool:
        modules = self._loaded()
        if not modules:
            return False
        current = getattr(modules[0], self.name)
        wrapper = current if _ours(current) else _wrap(current, self.hook)
        for module in modules:
            if getattr(module, self.name) in (current, getattr(current, "__wrapped__", None)):
                setattr(module, self.name, wrapper)
        return True

    def remove(self) -> None:
        for module in filter(None, map(sys.modules.get, self.modules)):  # never import just to unpatch
            value = getattr(module, self.name, None)
            if _ours(value):
                setattr(module, self.name, value.__wrapped__)


@dataclass(frozen=True)
class Deferred:
    """`inner` applied when its SDK is imported (now, if it already is). Installed = the SDK can be imported."""

    inner: Any  # a Patch

    @property
    def sdk(self) -> str:
        return str(self.inner.sdk)

    def apply(self) -> bool:
        try:
            if importlib.util.find_spec(self.sdk) is None:
                return False
        except (ImportError, ValueError):  # a parent package missing, or blocked in sys.modules
            return False
        _WANTED[self] = True
        if sys.modules.get(self.sdk) is not None:
            return bool(self.inner.apply())
        if self not in _REGISTERED:
            _REGISTERED.add(self)
            wrapt.register_post_import_hook(self._imported, self.sdk)
        return True

    def _imported(self, _module: Any) -> None:
        if _WANTED.get(self):
            with contain("instrument.deferred"):
                self.inner.apply()

    def remove(self) -> None:
        _WANTED[self] = False
        if sys.modules.get(self.sdk) is not None:
            self.inner.remove()


@dataclass(frozen=True)
class FirstOf:
    """The first of `patches` that applies: a private per-request method where the SDK still has it, else the
    public method that calls it (coarser, but never nothing)."""

    sdk: str
    patches: tuple[Any, ...]

    def apply(self) -> bool:
        return any(patch.apply() for patch in self.patches)  # any() stops at the first that applied

    def remove(self) -> None:
        for patch in self.patches:
            patch.remove()


_WANTED: dict[Deferred, bool] = {}  # applied and not removed since: a later import patches
_REGISTERED: set[Deferred] = set()  # post-import hooks cannot be unregistered: register each once


def _wrap(function: Any, hook: Callable[..., Any]) -> Any:
    wrapper = wrapt.FunctionWrapper(function, hook)
    setattr(wrapper, _MARK, True)
    return wrapper


def _ours(value: Any) -> bool:
    return isinstance(value, wrapt.FunctionWrapper) and getattr(value, _MARK, False)


def _kwargs(adapter: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by name (positional ones named after the function's signature)."""
    if not args:
        return kwargs
    named = dict(zip(adapter.positional, args, strict=False))
    return {**named, **kwargs}


def _begin(adapter: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Call, RequestFacts] | None:
    if recorder.current_call.get() is not None:
        return None  # inside another call of ours: that call is the one Call
    facts = None
    with contain("hook.request"):
        named = _kwargs(adapter, args, kwargs)
        if adapter.recorded(named):  # e.g. False for LiteLLM's `mock_response=`: nothing is sent or billed
            facts = adapter.request(None, named, recorder.options())
    if facts is None:
        return None
    call = recorder.start(facts)  # may raise BudgetExceeded, on purpose: nothing has been sent yet
    return None if call is None else (call, facts)


def _send(facts: RequestFacts, kwargs: dict[str, Any]) -> dict[str, Any]:
    if facts.send_kwargs is None:
        return kwargs
    return {**kwargs, "stream_options": facts.send_kwargs["stream_options"]}


class _ForStream:
    """The adapter, with its stream accumulator bound to the library's stream object (LiteLLM keeps the
    provider's own chunks on it, which is how a reported usage is told from an estimated one)."""

    __slots__ = ("adapter", "stream")

    def __init__(self, adapter: Any, stream: Any) -> None:
        self.adapter = adapter
        self.stream = stream

    def response(self, obj: Any) -> Any:
        return self.adapter.response(obj)

    def accumulator(self) -> Any:
        return self.adapter.accumulator(self.stream)


class _Owned(wrapt.ObjectProxy):  # type: ignore[misc]
    """A library stream that the call owns while it is read: some of LiteLLM's streams open their SDK request
    lazily, on the first read (its openai text-completion route), and that request is this Call, not another.
    Iteration only; everything else (and `isinstance`) is the library's object."""

    def __init__(self, wrapped: Any, call: Call) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_it: Any = None

    def __iter__(self) -> _Owned:
        return self

    def __next__(self) -> Any:
        if self._self_it is None:
            self._self_it = iter(self.__wrapped__)
        token = recorder.current_call.set(self._self_call)
        try:
            return next(self._self_it)
        finally:
            recorder.current_call.reset(token)

    def __aiter__(self) -> _Owned:
        return self

    async def __anext__(self) -> Any:
        if self._self_it is None:
            self._self_it = self.__wrapped__.__aiter__()
        token = recorder.current_call.set(self._self_call)
        try:
            return await self._self_it.__anext__()
        finally:
            recorder.current_call.reset(token)


def _observe(call: Call, result: Any, adapter: Any, facts: RequestFacts, is_async: bool) -> Any:
    if not call.stream:
        return observe(call, result, adapter, facts.hide, is_async)
    return observe(call, _Owned(result, call), _ForStream(adapter, result), facts.hide, is_async)


def library_hook(adapter: Any) -> Callable[..., Any]:
    def hook(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        begun = _begin(adapter, args, kwargs)
        if begun is None:
            return wrapped(*args, **kwargs)
        call, facts = begun
        send = _send(facts, kwargs)
        try:
            with recorder.active(call):
                result = wrapped(*args, **send)
        except BaseException as exc:  # cancellation included
            recorder.fail(call, exc)
            raise
        return _observe(call, result, adapter, facts, is_async=False)

    return hook


def async_library_hook(adapter: Any) -> Callable[..., Any]:
    async def hook(wrapped: Any, instance: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        begun = _begin(adapter, args, kwargs)
        if begun is None:
            return await wrapped(*args, **kwargs)
        call, facts = begun
        send = _send(facts, kwargs)
        try:
            with recorder.active(call):
                result = await wrapped(*args, **send)
        except BaseException as exc:
            recorder.fail(call, exc)
            raise
        return _observe(call, result, adapter, facts, is_async=True)

    return hook
