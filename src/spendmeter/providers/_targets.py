"""Every patched method in one table, read by both `instrument()` and `uninstrument()`.

A row names a module, a class, a method and the hook that wraps it. Rows whose module or attribute does
not exist in the installed SDK version are skipped (older majors lack some endpoints), never an error.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wrapt

from spendmeter.providers import _hooks
from spendmeter.providers.anthropic import MessagesAdapter
from spendmeter.providers.openai import ChatAdapter, EmbeddingsAdapter, ResponsesAdapter

log = logging.getLogger("spendmeter")


@dataclass(frozen=True)
class Target:
    sdk: str  # "openai" | "anthropic": the top-level package that must be importable
    module: str
    cls: str
    method: str
    hook: Callable[..., Any]


def _calls(
    sdk: str, module: str, sync_cls: str, async_cls: str, methods: tuple[str, ...], adapter: Any
) -> list[Target]:
    rows = []
    for method in methods:
        rows.append(Target(sdk, module, sync_cls, method, _hooks.call_hook(sdk, adapter)))
        rows.append(Target(sdk, module, async_cls, method, _hooks.async_call_hook(sdk, adapter)))
    return rows


_chat, _responses, _embeddings = ChatAdapter("chat"), ResponsesAdapter(), EmbeddingsAdapter()
_text, _messages = ChatAdapter("text_completion"), MessagesAdapter()

TARGETS: list[Target] = [
    # openai: streams helpers (`chat.completions.stream`, `responses.stream`) call `create` and are covered by it.
    *_calls(
        "openai",
        "openai.resources.chat.completions.completions",
        "Completions",
        "AsyncCompletions",
        ("create", "parse"),
        _chat,
    ),
    *_calls(
        "openai", "openai.resources.chat.completions", "Completions", "AsyncCompletions", ("create", "parse"), _chat
    ),  # openai < 1.40 layout
    *_calls(
        "openai", "openai.resources.beta.chat.completions", "Completions", "AsyncCompletions", ("parse",), _chat
    ),  # openai 1.x beta helpers
    *_calls(
        "openai", "openai.resources.responses.responses", "Responses", "AsyncResponses", ("create", "parse"), _responses
    ),
    *_calls("openai", "openai.resources.embeddings", "Embeddings", "AsyncEmbeddings", ("create",), _embeddings),
    *_calls("openai", "openai.resources.completions", "Completions", "AsyncCompletions", ("create",), _text),
    Target("openai", "openai._base_client", "BaseClient", "_build_request", _hooks.attempt_hook),
    # anthropic (Bedrock and Vertex clients use these same resource classes)
    *_calls(
        "anthropic",
        "anthropic.resources.messages.messages",
        "Messages",
        "AsyncMessages",
        ("create", "parse"),
        _messages,
    ),
    *_calls(
        "anthropic", "anthropic.resources.messages", "Messages", "AsyncMessages", ("create",), _messages
    ),  # anthropic < 0.40 layout
    *_calls(
        "anthropic",
        "anthropic.resources.beta.messages.messages",
        "Messages",
        "AsyncMessages",
        ("create", "parse"),
        _messages,
    ),
    Target(
        "anthropic",
        "anthropic.resources.messages.messages",
        "Messages",
        "stream",
        _hooks.stream_manager_hook("anthropic", _messages, is_async=False),
    ),
    Target(
        "anthropic",
        "anthropic.resources.messages.messages",
        "AsyncMessages",
        "stream",
        _hooks.stream_manager_hook("anthropic", _messages, is_async=True),
    ),
    Target(
        "anthropic",
        "anthropic.resources.beta.messages.messages",
        "Messages",
        "stream",
        _hooks.stream_manager_hook("anthropic", _messages, is_async=False),
    ),
    Target(
        "anthropic",
        "anthropic.resources.beta.messages.messages",
        "AsyncMessages",
        "stream",
        _hooks.stream_manager_hook("anthropic", _messages, is_async=True),
    ),
    Target("anthropic", "anthropic.resources.messages.batches", "Batches", "results", _hooks.batch_results_hook),
    Target(
        "anthropic", "anthropic.resources.messages.batches", "AsyncBatches", "results", _hooks.async_batch_results_hook
    ),
    Target("anthropic", "anthropic.resources.beta.messages.batches", "Batches", "results", _hooks.batch_results_hook),
    Target(
        "anthropic",
        "anthropic.resources.beta.messages.batches",
        "AsyncBatches",
        "results",
        _hooks.async_batch_results_hook,
    ),
    Target("anthropic", "anthropic._base_client", "BaseClient", "_build_request", _hooks.attempt_hook),
]


def _resolve(target: Target) -> type | None:
    try:
        module = importlib.import_module(target.module)
    except ImportError:
        return None
    cls = getattr(module, target.cls, None)
    if not isinstance(cls, type) or target.method not in vars(cls):
        return None
    return cls


def instrument() -> dict[str, int]:
    """Patch every target that exists; idempotent. Returns how many methods were patched per SDK."""
    patched: dict[str, int] = {}
    for target in TARGETS:
        cls = _resolve(target)
        if cls is None:
            continue
        current = vars(cls)[target.method]
        if isinstance(current, wrapt.FunctionWrapper) and getattr(current, "_self_spendmeter", False):
            patched[target.sdk] = patched.get(target.sdk, 0) + 1
            continue
        wrapper = wrapt.FunctionWrapper(current, target.hook)
        wrapper._self_spendmeter = True
        setattr(cls, target.method, wrapper)
        patched[target.sdk] = patched.get(target.sdk, 0) + 1
    return patched


def uninstrument() -> None:
    for target in TARGETS:
        cls = _resolve(target)
        if cls is None:
            continue
        current = vars(cls)[target.method]
        if isinstance(current, wrapt.FunctionWrapper) and getattr(current, "_self_spendmeter", False):
            setattr(cls, target.method, current.__wrapped__)
