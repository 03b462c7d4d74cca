"""OpenAI adapter: request facts, Usage and response facts from openai SDK objects and stream events.

Pure functions over SDK objects *or* plain dicts (raw responses are read as JSON), so they are tested with
payload dicts. Token classes (ARCHITECTURE.md): input = prompt − cached; cache_read = cached; output includes
reasoning; reasoning is reported apart and never added twice.
"""

from __future__ import annotations

from typing import Any

from spendmeter.call import Call, Usage
from spendmeter.providers._fields import get, get_int, given, path

AZURE = "azure.ai.openai"


def provider_of(instance: Any) -> str:
    client = getattr(instance, "_client", None)
    return AZURE if client is not None and "Azure" in type(client).__name__ else "openai"


def deployment_of(instance: Any, kwargs: dict[str, Any]) -> str | None:
    """On Azure the `model` argument names a deployment (unless the client is bound to one)."""
    client = getattr(instance, "_client", None)
    bound = getattr(client, "_azure_deployment", None)
    return bound or given(kwargs.get("model"))


def wants_usage_injection(instance: Any, kwargs: dict[str, Any], hosts: tuple[str, ...]) -> bool:
    """Ask a chat/completions stream for usage only where the endpoint is known to accept `stream_options`."""
    if not kwargs.get("stream"):
        return False
    options = given(kwargs.get("stream_options"))
    if isinstance(options, dict) and "include_usage" in options:
        return False  # the caller decided; respect it either way
    host = _host_of(instance)
    if not host:
        return False
    return any(host == h or (h.startswith(".") and host.endswith(h)) for h in hosts)


def with_usage_requested(kwargs: dict[str, Any]) -> dict[str, Any]:
    options = given(kwargs.get("stream_options"))
    merged = dict(options) if isinstance(options, dict) else {}
    merged["include_usage"] = True
    return {**kwargs, "stream_options": merged}


def is_injected_usage_chunk(chunk: Any) -> bool:
    """The usage-only final chunk that exists only because we asked for it: no choices, usage set."""
    return not get(chunk, "choices") and get(chunk, "usage") is not None


def _host_of(instance: Any) -> str | None:
    client = getattr(instance, "_client", None)
    base_url = getattr(client, "base_url", None)
    host = getattr(base_url, "host", None)
    return str(host) if host else None


# -- usage ------------------------------------------------------------------------------------------


def chat_usage(usage: Any) -> Usage:
    """Chat completions and legacy completions: prompt_tokens / completion_tokens (+ details)."""
    if usage is None:
        return Usage(source="missing")
    prompt = get_int(usage, "prompt_tokens")
    cached = get_int(path(usage, "prompt_tokens_details"), "cached_tokens")
    output = get_int(usage, "completion_tokens")
    reasoning = get_int(path(usage, "completion_tokens_details"), "reasoning_tokens")
    cached = min(cached, prompt)
    return Usage(input=prompt - cached, cache_read=cached, output=output, reasoning=reasoning, source="reported")


def responses_usage(usage: Any) -> Usage:
    """Responses API: input_tokens / output_tokens (+ details)."""
    if usage is None:
        return Usage(source="missing")
    prompt = get_int(usage, "input_tokens")
    cached = min(get_int(path(usage, "input_tokens_details"), "cached_tokens"), prompt)
    output = get_int(usage, "output_tokens")
    reasoning = get_int(path(usage, "output_tokens_details"), "reasoning_tokens")
    return Usage(input=prompt - cached, cache_read=cached, output=output, reasoning=reasoning, source="reported")


def embeddings_usage(usage: Any) -> Usage:
    if usage is None:
        return Usage(source="missing")
    return Usage(input=get_int(usage, "prompt_tokens"), source="reported")


# -- adapters ---------------------------------------------------------------------------------------


class ChatAdapter:
    """chat.completions.create / parse, and legacy completions.create (same usage shape)."""

    def __init__(self, operation: str = "chat") -> None:
        self.operation = operation

    def finish_into(self, response: Any, call: Call) -> None:
        call.usage = chat_usage(get(response, "usage"))
        _response_facts(response, call)
        choices = get(response, "choices") or ()
        call.finish_reasons = tuple(str(r) for c in choices if (r := get(c, "finish_reason")))

    def accumulator(self) -> ChatStreamUsage:
        return ChatStreamUsage()


class ResponsesAdapter:
    operation = "responses"

    def finish_into(self, response: Any, call: Call) -> None:
        call.usage = responses_usage(get(response, "usage"))
        _response_facts(response, call)
        status = get(response, "status")
        call.finish_reasons = (str(status),) if status else ()

    def accumulator(self) -> ResponsesStreamUsage:
        return ResponsesStreamUsage()


class EmbeddingsAdapter:
    operation = "embeddings"

    def finish_into(self, response: Any, call: Call) -> None:
        call.usage = embeddings_usage(get(response, "usage"))
        call.response_model = given(get(response, "model")) or call.response_model

    def accumulator(self) -> ChatStreamUsage:  # embeddings never stream
        return ChatStreamUsage()


def _response_facts(response: Any, call: Call) -> None:
    call.response_model = given(get(response, "model")) or call.response_model
    call.response_id = given(get(response, "id")) or call.response_id
    tier = given(get(response, "service_tier"))
    if tier:
        call.service_tier = str(tier)


class ChatStreamUsage:
    """Chat / completions stream: usage arrives (if asked for) on the last chunk; model/id on every chunk."""

    __slots__ = ("finish_reasons", "model", "response_id", "service_tier", "usage")

    def __init__(self) -> None:
        self.usage: Any = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.service_tier: str | None = None
        self.finish_reasons: list[str] = []

    def observe(self, chunk: Any) -> None:
        if self.model is None:
            self.model = get(chunk, "model")
            self.response_id = get(chunk, "id")
        tier = get(chunk, "service_tier")
        if tier:
            self.service_tier = tier
        for choice in get(chunk, "choices") or ():
            reason = get(choice, "finish_reason")
            if reason:
                self.finish_reasons.append(str(reason))
        usage = get(chunk, "usage")
        if usage is not None:
            self.usage = usage

    def finish_into(self, call: Call) -> None:
        call.usage = chat_usage(self.usage)
        call.response_model = self.model or call.response_model
        call.response_id = self.response_id or call.response_id
        call.service_tier = self.service_tier or call.service_tier
        call.finish_reasons = tuple(self.finish_reasons)


_TERMINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesStreamUsage:
    """Responses stream: the terminal event carries the whole Response, usage included.

    A failure mid-stream arrives as an `error` event (or `response.failed`) that the SDK yields rather than
    raises, so the call is marked as an error here.
    """

    __slots__ = ("error", "response")

    def __init__(self) -> None:
        self.response: Any = None
        self.error: str | None = None

    def observe(self, event: Any) -> None:
        kind = get(event, "type")
        if kind in _TERMINAL_RESPONSE_EVENTS or (kind == "response.created" and self.response is None):
            self.response = get(event, "response")
        if kind == "error":
            self.error = str(get(event, "code") or "error")
        elif kind == "response.failed":
            self.error = str(get(get(get(event, "response"), "error"), "code") or "response.failed")

    def finish_into(self, call: Call) -> None:
        if self.error is not None:
            call.status = "error"
            call.error_type = self.error
        if self.response is None:
            call.usage = Usage(source="missing")
            return
        ResponsesAdapter().finish_into(self.response, call)
