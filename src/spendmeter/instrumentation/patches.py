"""Every patch in one table, read by both `instrument()` and `uninstrument()`.

A patch is a strategy: today a wrapped class method (`MethodPatch`); an SDK event hook or a library
callback is another class with the same three members (`sdk`, `apply()`, `remove()`). Rows whose module or
attribute does not exist in the installed SDK version are skipped (older majors lack some endpoints), never
an error. Applying is idempotent: a marker on our wrapper says it is ours.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import wrapt

from spendmeter.instrumentation import hooks
from spendmeter.providers import anthropic, openai

_MARK = "_self_spendmeter"


class Patch(Protocol):
    sdk: str  # the top-level package that must be importable

    def apply(self) -> bool:
        """Patch if possible (idempotent); True when it is in place."""

    def remove(self) -> None: ...


@dataclass(frozen=True)
class MethodPatch:
    """Wrap `module.cls.method` with `hook` (a wrapt wrapper: `hook(wrapped, instance, args, kwargs)`)."""

    sdk: str
    module: str
    cls: str
    method: str
    hook: Callable[..., Any]

    def _owner(self, load: bool = True) -> type | None:
        """The class to patch; with `load=False` only if its module is already imported (removing a patch
        must not import an SDK: importing them all takes seconds at every process exit)."""
        if load:
            try:
                module = importlib.import_module(self.module)
            except ImportError:
                return None
        else:
            module = sys.modules.get(self.module)
        owner = getattr(module, self.cls, None)
        if not isinstance(owner, type) or self.method not in vars(owner):
            return None
        return owner

    def apply(self) -> bool:
        owner = self._owner()
        if owner is None:
            return False
        current = vars(owner)[self.method]
        if not _ours(current):
            wrapper = wrapt.FunctionWrapper(current, self.hook)
            setattr(wrapper, _MARK, True)
            setattr(owner, self.method, wrapper)
        return True

    def remove(self) -> None:
        owner = self._owner(load=False)
        if owner is not None and _ours(current := vars(owner)[self.method]):
            setattr(owner, self.method, current.__wrapped__)


def _ours(value: Any) -> bool:
    return isinstance(value, wrapt.FunctionWrapper) and getattr(value, _MARK, False)


def _calls(sdk: str, module: str, classes: tuple[str, str], methods: tuple[str, ...], adapter: Any) -> list[Patch]:
    """A sync and an async resource class with the same methods, each method one call."""
    sync_cls, async_cls = classes
    rows: list[Patch] = []
    for method in methods:
        rows.append(MethodPatch(sdk, module, sync_cls, method, hooks.call_hook(adapter)))
        rows.append(MethodPatch(sdk, module, async_cls, method, hooks.async_call_hook(adapter)))
    return rows


def _managers(sdk: str, module: str, adapter: Any) -> list[Patch]:
    return [
        MethodPatch(sdk, module, "Messages", "stream", hooks.stream_manager_hook(adapter, is_async=False)),
        MethodPatch(sdk, module, "AsyncMessages", "stream", hooks.stream_manager_hook(adapter, is_async=True)),
    ]


def _results(sdk: str, module: str, adapter: Any) -> list[Patch]:
    return [
        MethodPatch(sdk, module, "Batches", "results", hooks.results_hook(adapter)),
        MethodPatch(sdk, module, "AsyncBatches", "results", hooks.async_results_hook(adapter)),
    ]


def _litellm() -> list[Patch]:
    """The public names only (`litellm.completion`, ...): LiteLLM's own modules call each other through their
    module globals (its async entry points call the sync ones), and those must stay LiteLLM's."""
    from spendmeter.instrumentation import functions as fn
    from spendmeter.providers import litellm as ll

    rows: list[Patch] = []
    for name, adapter in (
        ("completion", ll.CHAT),
        ("text_completion", ll.TEXT_COMPLETION),
        ("embedding", ll.EMBEDDINGS),
        ("responses", ll.RESPONSES),
    ):
        for fname, hook in ((name, fn.library_hook(adapter)), ("a" + name, fn.async_library_hook(adapter))):
            rows.append(fn.Deferred(fn.FunctionPatch("litellm", ("litellm",), fname, hook)))
    return rows


def _google() -> list[Patch]:
    from spendmeter.instrumentation import functions as fn
    from spendmeter.providers import google

    sdk, module = "google.genai", "google.genai.models"
    rows: list[Patch] = []
    for cls, hook in (("Models", hooks.call_hook), ("AsyncModels", hooks.async_call_hook)):
        for private, public, adapter in (
            ("_generate_content", "generate_content", google.GENERATE),
            ("_generate_content_stream", "generate_content_stream", google.GENERATE_STREAM),
        ):
            pair = (MethodPatch(sdk, module, cls, private, hook(adapter)),
                    MethodPatch(sdk, module, cls, public, hook(adapter)))
            rows.append(fn.Deferred(fn.FirstOf(sdk, pair)))
        rows.append(fn.Deferred(MethodPatch(sdk, module, cls, "embed_content", hook(google.EMBED))))
    return rows


_OAI = "openai.resources"
_ANT = "anthropic.resources"
_COMPLETIONS = ("Completions", "AsyncCompletions")
_MESSAGES = ("Messages", "AsyncMessages")

PATCHES: tuple[Patch, ...] = (
    # openai: the stream helpers (`chat.completions.stream`, `responses.stream`) call `create`: covered by it.
    *_calls("openai", f"{_OAI}.chat.completions.completions", _COMPLETIONS, ("create", "parse"), openai.CHAT),
    *_calls("openai", f"{_OAI}.chat.completions", _COMPLETIONS, ("create", "parse"), openai.CHAT),  # < 1.40
    *_calls("openai", f"{_OAI}.beta.chat.completions", _COMPLETIONS, ("parse",), openai.CHAT),  # 1.x beta
    *_calls(
        "openai", f"{_OAI}.responses.responses", ("Responses", "AsyncResponses"), ("create", "parse"), openai.RESPONSES
    ),
    *_calls("openai", f"{_OAI}.embeddings", ("Embeddings", "AsyncEmbeddings"), ("create",), openai.EMBEDDINGS),
    *_calls("openai", f"{_OAI}.completions", _COMPLETIONS, ("create",), openai.TEXT_COMPLETION),
    MethodPatch("openai", "openai._base_client", "BaseClient", "_build_request", hooks.attempt_hook),
    # anthropic (the Bedrock and Vertex clients use these same resource classes)
    *_calls("anthropic", f"{_ANT}.messages.messages", _MESSAGES, ("create", "parse"), anthropic.MESSAGES),
    *_calls("anthropic", f"{_ANT}.messages", _MESSAGES, ("create",), anthropic.MESSAGES),  # < 0.40
    *_calls("anthropic", f"{_ANT}.beta.messages.messages", _MESSAGES, ("create", "parse"), anthropic.MESSAGES),
    *_managers("anthropic", f"{_ANT}.messages.messages", anthropic.MESSAGES),
    *_managers("anthropic", f"{_ANT}.beta.messages.messages", anthropic.MESSAGES),
    *_results("anthropic", f"{_ANT}.messages.batches", anthropic.BATCH_RESULTS),
    *_results("anthropic", f"{_ANT}.beta.messages.batches", anthropic.BATCH_RESULTS),
    MethodPatch("anthropic", "anthropic._base_client", "BaseClient", "_build_request", hooks.attempt_hook),
    # litellm: its public functions, patched when the application imports litellm (docs/litellm.md says why)
    *_litellm(),
    # google-genai: one Call per HTTP request (automatic function calling and continuation send several)
    *_google(),
)


def instrument() -> dict[str, int]:
    """Apply every patch that can be applied; idempotent. Returns how many are in place per SDK."""
    applied: dict[str, int] = {}
    for patch in PATCHES:
        if patch.apply():
            applied[patch.sdk] = applied.get(patch.sdk, 0) + 1
    return applied


def uninstrument() -> None:
    for patch in PATCHES:
        patch.remove()
