"""Anthropic Messages: request facts (provider from the client: Bedrock or Vertex, else from the endpoint),
response facts from a `Message`, and the stream accumulator that merges `message_start` and `message_delta`.

An Anthropic client at an endpoint nobody mapped is *not* assumed to be Anthropic: several providers speak
Anthropic's wire format for their own models (DeepSeek, Moonshot and z.ai have Anthropic-compatible
endpoints) and a gateway may resell at its own prices, so such a call gets the endpoint's own provider label
and stays unpriced (with a warning naming the fix) until the user maps the host."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spendmeter.call import Usage
from spendmeter.providers.anthropic.usage import (
    USAGE_FIELDS,
    iteration_steps,
    message_usage,
    server_tool_uses,
    usage_from_fields,
    usage_with_steps,
)
from spendmeter.providers.base import RequestFacts, RequestOptions, ResponseFacts
from spendmeter.providers.endpoints import (
    ANTHROPIC,
    BEDROCK,
    VERTEX,
    client_of,
    endpoint_parts,
    identify,
)
from spendmeter.providers.fields import as_int, get, given, max_tokens_of


def provider_of(
    client: Any, user_map: Mapping[str, str] | None = None, parts: tuple[Any, Any, Any] | None = None
) -> str:
    """Bedrock and Vertex have SDK clients of their own (their endpoints are per region); else the endpoint
    (`parts`: the client's `endpoint_parts`, when the caller has them already)."""
    name = type(client).__name__
    if "Bedrock" in name:
        return BEDROCK
    if "Vertex" in name:
        return VERTEX
    host, port, path = endpoint_parts(client) if parts is None else parts
    return identify(host, port, path, ANTHROPIC, user_map)


def request_user(kwargs: dict[str, Any]) -> str | None:
    metadata = given(kwargs.get("metadata"))
    user = get(metadata, "user_id") if metadata else None
    return str(user) if user else None


class MessagesAdapter:
    operation = "messages"  # the span maps it to the GenAI operation name "chat"
    read_later = True  # the SDK's own model: its facts are read on the finisher thread

    def request(self, resource: Any, kwargs: dict[str, Any], options: RequestOptions) -> RequestFacts:
        client = client_of(resource)
        parts = endpoint_parts(client)
        host, port, _path = parts
        model = given(kwargs.get("model"))
        facts = RequestFacts(
            provider=provider_of(client, options.providers, parts),
            operation=self.operation,
            model=str(model) if model is not None else None,
            stream=bool(given(kwargs.get("stream"))),
            user=request_user(kwargs),
            service_tier=given(kwargs.get("service_tier")),
            max_tokens=max_tokens_of(kwargs),
            server_address=host,
            server_port=port,
        )
        if options.capture_content:
            messages = given(kwargs.get("messages"))
            if messages is not None:
                facts.capture = {"input": messages, "system": given(kwargs.get("system"))}
        return facts

    def response(self, obj: Any) -> ResponseFacts:
        usage = get(obj, "usage")
        tier = get(usage, "service_tier")
        reason = get(obj, "stop_reason")
        model = given(get(obj, "model"))
        steps = iteration_steps(get(usage, "iterations"), model)
        return ResponseFacts(
            usage=usage_with_steps(message_usage(usage), steps),
            model=model,
            response_id=given(get(obj, "id")),
            service_tier=str(tier) if tier else None,
            finish_reasons=(str(reason),) if reason else (),
            steps=steps,
            tools=server_tool_uses(usage),
        )

    def accumulator(self) -> MessageStreamUsage:
        return MessageStreamUsage()


class MessageStreamUsage:
    """Merges `message_start` and the cumulative `message_delta` usage, latest value per field. The per-event
    path only keeps the usage objects; `facts()` reads and merges them (off the caller's thread for the SDK's
    own events, which nothing edits afterwards)."""

    __slots__ = ("model", "response_id", "stop_reason", "usages")

    def __init__(self) -> None:
        self.usages: list[Any] = []  # message_start's, then each message_delta's, in order
        self.model: str | None = None
        self.response_id: str | None = None
        self.stop_reason: str | None = None

    def observe(self, event: Any) -> None:
        # The per-event path: most events are content deltas, with nothing to count.
        kind = event.get("type") if type(event) is dict else getattr(event, "type", None)
        if kind == "content_block_delta":
            return
        if kind == "message_start":
            message = get(event, "message")
            self.model = get(message, "model")
            self.response_id = get(message, "id")
            self.usages.append(get(message, "usage"))
        elif kind == "message_delta":
            self.usages.append(get(event, "usage"))
            reason = get(get(event, "delta"), "stop_reason")
            if reason:
                self.stop_reason = str(reason)

    def facts(self) -> ResponseFacts:
        merged = _MergedUsage()
        for usage in self.usages:
            if usage is not None:
                merged.add(usage)
        if not merged.seen:
            return ResponseFacts(usage=Usage(source="missing"), model=self.model, response_id=self.response_id)
        steps = iteration_steps(merged.iterations, self.model)
        return ResponseFacts(
            usage=usage_with_steps(usage_from_fields(merged.fields, merged.split), steps),
            model=self.model,
            response_id=self.response_id,
            service_tier=merged.service_tier,
            finish_reasons=(self.stop_reason,) if self.stop_reason else (),
            steps=steps,
            tools=merged.tools,
        )


class _MergedUsage:
    """A stream's usage objects merged in order: the latest value of each field wins."""

    def __init__(self) -> None:
        self.fields = dict.fromkeys((*USAGE_FIELDS, "thinking_tokens"), 0)
        self.split: Any = None
        self.iterations: Any = None  # cumulative like the rest: the latest list wins
        self.tools: tuple[tuple[str, int], ...] = ()
        self.seen = False
        self.service_tier: str | None = None

    def add(self, usage: Any) -> None:
        self.seen = True
        for name in USAGE_FIELDS:
            value = as_int(get(usage, name))
            if value is not None:
                self.fields[name] = value
        thinking = as_int(get(get(usage, "output_tokens_details"), "thinking_tokens"))
        if thinking is not None:
            self.fields["thinking_tokens"] = thinking
        split = get(usage, "cache_creation")
        if split is not None:
            self.split = split
        iterations = get(usage, "iterations")
        if iterations:
            self.iterations = iterations
        tools = server_tool_uses(usage)
        if tools:
            self.tools = tools
        tier = get(usage, "service_tier")
        if tier:
            self.service_tier = str(tier)
