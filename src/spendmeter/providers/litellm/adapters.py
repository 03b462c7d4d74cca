"""LiteLLM adapters: request facts from the call's kwargs, response facts from LiteLLM's objects, and the
stream accumulators. LiteLLM returns OpenAI-shaped objects for every provider, so one reading fits all.

Reported or estimated: when a stream carried no usage, LiteLLM counts tokens itself (a tokenizer estimate)
and hands that out in the same fields as a provider's numbers. A stream's usage is `reported` only when one
of the provider's own chunks carried usage (LiteLLM keeps them on the stream wrapper); else `estimated`,
never `reported`. LiteLLM's own "nothing reported" marker (`UnreportedUsage`) is `missing`.
"""

from __future__ import annotations

import weakref
from typing import Any

from spendmeter.call import Usage, UsageSource
from spendmeter.providers.base import RequestFacts, RequestOptions, ResponseFacts
from spendmeter.providers.fields import get, given
from spendmeter.providers.litellm.request import request_facts
from spendmeter.providers.litellm.usage import chat_usage, is_unreported, responses_usage

# Positional parameters of each entry point, so `litellm.completion("openai/gpt-4o", msgs)` reads the same.
POSITIONAL = {
    "chat": ("model", "messages"),
    "text_completion": ("prompt", "model"),
    "embeddings": ("model", "input"),
    "responses": ("input", "model"),
}


# Arguments that make LiteLLM answer by itself, sending nothing to any provider: nothing to record.
_LOCAL_ANSWERS = ("mock_response", "mock_tool_calls")


def recorded(kwargs: dict[str, Any]) -> bool:
    """False for calls LiteLLM answers locally (`mock_response=`): no provider request, nothing billed."""
    return not any(given(kwargs.get(name)) is not None for name in _LOCAL_ANSWERS)


def _cache_hit(obj: Any) -> bool:
    """LiteLLM served the response from its own cache (`litellm.cache`): the provider billed nothing now."""
    hidden = get(obj, "_hidden_params")
    return isinstance(hidden, dict) and hidden.get("cache_hit") is True


def _finish_reasons(obj: Any) -> tuple[str, ...]:
    return tuple(str(r) for c in get(obj, "choices") or () if (r := get(c, "finish_reason")))


def _tier(obj: Any) -> str | None:
    tier = given(get(obj, "service_tier")) or given(get(get(obj, "usage"), "service_tier"))
    return str(tier) if tier else None


class CompletionAdapter:
    """completion / acompletion / text_completion / embedding: `litellm.Usage` on the result."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.positional = POSITIONAL[operation]

    def request(self, resource: Any, kwargs: dict[str, Any], options: RequestOptions) -> RequestFacts:
        return request_facts(self.operation, kwargs, options)

    recorded = staticmethod(recorded)

    def response(self, obj: Any) -> ResponseFacts:
        usage = get(obj, "usage")
        if _cache_hit(obj):
            parsed = Usage(source="reported")  # a cached copy carries the first call's usage: this one is free
        else:
            parsed = Usage(source="missing") if is_unreported(usage) else chat_usage(usage)
        return ResponseFacts(
            usage=parsed,
            model=given(get(obj, "model")),
            response_id=given(get(obj, "id")),
            service_tier=_tier(obj),
            finish_reasons=_finish_reasons(obj),
        )

    def accumulator(self, stream: Any = None) -> StreamUsage:
        return StreamUsage(stream)


class ResponsesAdapter:
    operation = "responses"
    positional = POSITIONAL["responses"]

    def request(self, resource: Any, kwargs: dict[str, Any], options: RequestOptions) -> RequestFacts:
        return request_facts(self.operation, kwargs, options)

    recorded = staticmethod(recorded)

    def response(self, obj: Any) -> ResponseFacts:
        status = get(obj, "status")
        return ResponseFacts(
            usage=responses_usage(get(obj, "usage")),
            model=given(get(obj, "model")),
            response_id=given(get(obj, "id")),
            service_tier=_tier(obj),
            finish_reasons=(str(status),) if status else (),
        )

    def accumulator(self, stream: Any = None) -> ResponsesStreamUsage:
        return ResponsesStreamUsage()


_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesStreamUsage:
    """`litellm.responses(stream=True)`: the terminal event carries the whole response, usage included."""

    __slots__ = ("error", "response")

    def __init__(self) -> None:
        self.response: Any = None
        self.error: str | None = None

    def observe(self, event: Any) -> None:
        kind = get(event, "type")
        kind = str(getattr(kind, "value", kind) or "")  # LiteLLM's events carry an Enum of the wire names
        if kind in _TERMINAL or (kind == "response.created" and self.response is None):
            self.response = get(event, "response")
        if kind in ("error", "response.failed"):
            self.error = kind

    def facts(self) -> ResponseFacts:
        facts = ResponseFacts(usage=Usage(source="missing"))
        if self.response is not None:
            facts = ResponsesAdapter().response(self.response)
        facts.error_type = self.error
        return facts


class StreamUsage:
    """A LiteLLM chat / text-completion stream (`CustomStreamWrapper`).

    The usage is the one LiteLLM gives the caller (the final usage chunk when `include_usage` was asked
    for, else the last chunk's `_hidden_params["usage"]`, which LiteLLM fills in at the end of the stream);
    whether it was reported is read off the provider chunks LiteLLM kept (`stream.chunks`).
    """

    __slots__ = ("_stream", "finish_reasons", "last", "model", "response_id", "usage")

    def __init__(self, stream: Any = None) -> None:
        self._stream = _weak(stream)
        self.usage: Any = None
        self.last: Any = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.finish_reasons: list[str] = []

    def observe(self, chunk: Any) -> None:
        if self.model is None:
            self.model = given(get(chunk, "model")) or None
            self.response_id = given(get(chunk, "id"))
        self.finish_reasons += _finish_reasons(chunk)
        usage = get(chunk, "usage")
        if usage is not None:
            self.usage = usage
        self.last = chunk

    def _final_usage(self) -> Any:
        if self.usage is not None:
            return self.usage
        hidden = get(self.last, "_hidden_params")
        return hidden.get("usage") if isinstance(hidden, dict) else None

    def facts(self) -> ResponseFacts:
        usage = self._final_usage()
        if usage is None or is_unreported(usage):
            parsed = Usage(source="missing")
        else:
            parsed = chat_usage(usage, self._source())
        return ResponseFacts(
            usage=parsed, model=self.model, response_id=self.response_id, finish_reasons=tuple(self.finish_reasons)
        )

    def _source(self) -> UsageSource:
        stream = self._stream() if self._stream is not None else None
        kept = _kept_chunks(stream)
        if kept is None:
            return "estimated"  # cannot prove the provider reported it: never claim it did
        return "reported" if any(_provider_usage(c) for c in kept) else "estimated"


def _kept_chunks(stream: Any) -> list[Any] | None:
    """The provider chunks LiteLLM keeps on its stream wrapper (text_completion wraps a chat wrapper)."""
    for obj in (stream, get(stream, "completion_stream")):
        chunks = getattr(obj, "chunks", None)
        if isinstance(chunks, list):
            return chunks
    return None


def _provider_usage(chunk: Any) -> bool:
    usage = get(chunk, "usage")
    return usage is not None and not is_unreported(usage)


def _weak(obj: Any) -> Any:
    if obj is None:
        return None
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj
