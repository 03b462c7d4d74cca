"""OpenAI adapters: chat completions (and legacy completions), Responses, embeddings, and their stream
accumulators. Each turns SDK objects or JSON dicts into `ResponseFacts`; none writes a `Call`."""

from __future__ import annotations

from typing import Any

from spendmeter.call import Usage
from spendmeter.providers.base import RequestFacts, RequestOptions, ResponseFacts
from spendmeter.providers.fields import fast_fields, get, given
from spendmeter.providers.openai.request import request_facts
from spendmeter.providers.openai.usage import (
    billed_cost,
    chat_usage,
    embeddings_usage,
    responses_tools,
    responses_usage,
)

BILLED_COST_SOURCE = "response usage.cost"  # OpenRouter's billed amount, reported in the response


def _facts(response: Any, usage: Usage, finish_reasons: tuple[str, ...], raw_usage: Any = None) -> ResponseFacts:
    tier = given(get(response, "service_tier"))
    facts = ResponseFacts(
        usage=usage,
        model=given(get(response, "model")),
        response_id=given(get(response, "id")),
        service_tier=str(tier) if tier else None,
        finish_reasons=finish_reasons,
    )
    _billed(facts, raw_usage)
    return facts


def _billed(facts: ResponseFacts, raw_usage: Any) -> None:
    billed = billed_cost(raw_usage) if raw_usage is not None else None
    if billed is not None:
        facts.billed_cost, facts.billed_cost_source = billed, BILLED_COST_SOURCE


class ChatAdapter:
    """chat.completions.create / parse, and legacy completions.create (same usage shape)."""

    read_later = True  # the SDK's own model: its facts are read on the finisher thread

    def __init__(self, operation: str = "chat") -> None:
        self.operation = operation

    def request(self, resource: Any, kwargs: dict[str, Any], options: RequestOptions) -> RequestFacts:
        return request_facts(self.operation, resource, kwargs, options)

    def response(self, obj: Any) -> ResponseFacts:
        choices = get(obj, "choices") or ()
        reasons = tuple(str(r) for c in choices if (r := get(c, "finish_reason")))
        usage = get(obj, "usage")
        return _facts(obj, chat_usage(usage), reasons, usage)

    def accumulator(self) -> ChatStreamUsage:
        return ChatStreamUsage()


class ResponsesAdapter:
    operation = "responses"
    read_later = True  # the SDK's own model: its facts are read on the finisher thread

    def request(self, resource: Any, kwargs: dict[str, Any], options: RequestOptions) -> RequestFacts:
        return request_facts(self.operation, resource, kwargs, options)

    def response(self, obj: Any) -> ResponseFacts:
        status = get(obj, "status")
        usage = get(obj, "usage")
        facts = _facts(obj, responses_usage(usage), (str(status),) if status else (), usage)
        facts.tools = responses_tools(obj)
        return facts

    def accumulator(self) -> ResponsesStreamUsage:
        return ResponsesStreamUsage()


class EmbeddingsAdapter:
    operation = "embeddings"
    read_later = True  # the SDK's own model: its facts are read on the finisher thread

    def request(self, resource: Any, kwargs: dict[str, Any], options: RequestOptions) -> RequestFacts:
        return request_facts(self.operation, resource, kwargs, options)

    def response(self, obj: Any) -> ResponseFacts:
        return ResponseFacts(usage=embeddings_usage(get(obj, "usage")), model=given(get(obj, "model")))

    def accumulator(self) -> ChatStreamUsage:  # embeddings never stream
        return ChatStreamUsage()


class ChatStreamUsage:
    """Chat / completions stream: usage arrives (if asked for, or where the host always sends it) on the last
    chunk; model/id on every chunk. Some hosts put it inside the last choice instead (Moonshot)."""

    __slots__ = ("finish_reasons", "model", "response_id", "service_tier", "usage")

    def __init__(self) -> None:
        self.usage: Any = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.service_tier: str | None = None
        self.finish_reasons: list[str] = []

    def observe(self, chunk: Any) -> None:
        fields = fast_fields(chunk)
        if fields is None:
            return self._observe_any(chunk)
        # The per-chunk path: the SDK's own chunk class, its declared fields read from its __dict__.
        if self.model is None:
            self.model = fields.get("model")
            self.response_id = fields.get("id")
        tier = fields.get("service_tier")
        if tier:
            self.service_tier = tier
        choices = fields.get("choices")
        if choices:
            for choice in choices:
                own = getattr(choice, "__dict__", None)
                reason = own["finish_reason"] if own is not None and "finish_reason" in own else get(
                    choice, "finish_reason")
                if reason:
                    self.finish_reasons.append(str(reason))
                extra = getattr(choice, "__pydantic_extra__", None)  # Moonshot: usage inside the last choice
                if extra and extra.get("usage") is not None:
                    self.usage = extra["usage"]
                elif type(choice) is dict and choice.get("usage") is not None:
                    self.usage = choice["usage"]
        usage = fields.get("usage")
        if usage is not None:
            self.usage = usage
        return None

    def _observe_any(self, chunk: Any) -> None:
        """Any other chunk shape (plain dicts, other libraries' objects): every field read through `get`."""
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
            inner = get(choice, "usage")
            if inner is not None:
                self.usage = inner
        usage = get(chunk, "usage")
        if usage is not None:
            self.usage = usage

    def facts(self) -> ResponseFacts:
        facts = ResponseFacts(
            usage=chat_usage(self.usage),
            model=self.model,
            response_id=self.response_id,
            service_tier=self.service_tier,
            finish_reasons=tuple(self.finish_reasons),
        )
        _billed(facts, self.usage)
        return facts


_TERMINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesStreamUsage:
    """Responses stream: the terminal event carries the whole Response, usage included.

    A failure mid-stream arrives as an `error` event (or `response.failed`) that the SDK yields rather than
    raises, so the facts say the call failed.
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

    def facts(self) -> ResponseFacts:
        facts = ResponseFacts(usage=Usage(source="missing"))
        if self.response is not None:
            facts = ResponsesAdapter().response(self.response)
        facts.error_type = self.error
        return facts
