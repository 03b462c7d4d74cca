"""Anthropic adapter: Usage and response facts from anthropic SDK messages, stream events and batch results.

Token classes: input = input_tokens (already excludes cache reads and writes); cache_read =
cache_read_input_tokens; cache writes split into 5-minute and 1-hour writes when `cache_creation` says so
(else all 5-minute, the default TTL); output = output_tokens. Streams: `message_start` carries the initial
usage, `message_delta` cumulative values; we merge both, latest value wins per field, never adding.
"""

from __future__ import annotations

from typing import Any

from spendmeter.call import Call, Usage
from spendmeter.providers._fields import get, get_int, given

_USAGE_FIELDS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens",
)


def provider_of(instance: Any) -> str:
    name = type(getattr(instance, "_client", None)).__name__
    if "Bedrock" in name:
        return "aws.bedrock"
    if "Vertex" in name:
        return "gcp.vertex_ai"
    return "anthropic"


def request_user(kwargs: dict[str, Any]) -> str | None:
    metadata = given(kwargs.get("metadata"))
    user = get(metadata, "user_id") if metadata else None
    return str(user) if user else None


def message_usage(usage: Any) -> Usage:
    if usage is None:
        return Usage(source="missing")
    fields = {name: get_int(usage, name) for name in _USAGE_FIELDS}
    fields["thinking_tokens"] = get_int(get(usage, "output_tokens_details"), "thinking_tokens")
    split = get(usage, "cache_creation")
    return _usage(fields, split)


def _usage(fields: dict[str, int], split: Any) -> Usage:
    """`thinking_tokens` (newer SDKs, `output_tokens_details`) are part of `output_tokens`: reasoning."""
    write_total = fields["cache_creation_input_tokens"]
    write_1h = get_int(split, "ephemeral_1h_input_tokens") if split is not None else 0
    write_5m = get_int(split, "ephemeral_5m_input_tokens") if split is not None else write_total
    if split is not None and write_5m + write_1h != write_total and write_total:
        # The breakdown disagrees with the total: trust the total, attribute the rest to the 5-minute class.
        write_5m = max(0, write_total - write_1h)
    return Usage(
        input=fields["input_tokens"],
        cache_read=fields["cache_read_input_tokens"],
        cache_write_5m=write_5m,
        cache_write_1h=write_1h,
        output=fields["output_tokens"],
        reasoning=min(fields.get("thinking_tokens", 0), fields["output_tokens"]),
        source="reported",
    )


class MessagesAdapter:
    operation = "messages"  # the span maps it to the GenAI operation name "chat"

    def finish_into(self, message: Any, call: Call) -> None:
        usage = get(message, "usage")
        call.usage = message_usage(usage)
        call.response_model = given(get(message, "model")) or call.response_model
        call.response_id = given(get(message, "id")) or call.response_id
        tier = get(usage, "service_tier")
        if tier:
            call.service_tier = str(tier)
        reason = get(message, "stop_reason")
        call.finish_reasons = (str(reason),) if reason else ()

    def accumulator(self) -> MessageStreamUsage:
        return MessageStreamUsage()


class MessageStreamUsage:
    """Merges `message_start` and the cumulative `message_delta` usage, latest value per field."""

    __slots__ = ("fields", "model", "response_id", "seen", "service_tier", "split", "stop_reason")

    def __init__(self) -> None:
        self.fields = dict.fromkeys((*_USAGE_FIELDS, "thinking_tokens"), 0)
        self.split: Any = None
        self.seen = False
        self.model: str | None = None
        self.response_id: str | None = None
        self.service_tier: str | None = None
        self.stop_reason: str | None = None

    def observe(self, event: Any) -> None:
        kind = get(event, "type")
        if kind == "message_start":
            message = get(event, "message")
            self.model = get(message, "model")
            self.response_id = get(message, "id")
            self._merge(get(message, "usage"))
        elif kind == "message_delta":
            self._merge(get(event, "usage"))
            reason = get(get(event, "delta"), "stop_reason")
            if reason:
                self.stop_reason = str(reason)

    def _merge(self, usage: Any) -> None:
        if usage is None:
            return
        self.seen = True
        for name in _USAGE_FIELDS:
            value = get(usage, name)
            if isinstance(value, int):
                self.fields[name] = value
        thinking = get(get(usage, "output_tokens_details"), "thinking_tokens")
        if isinstance(thinking, int):
            self.fields["thinking_tokens"] = thinking
        split = get(usage, "cache_creation")
        if split is not None:
            self.split = split
        tier = get(usage, "service_tier")
        if tier:
            self.service_tier = str(tier)

    def finish_into(self, call: Call) -> None:
        call.usage = _usage(self.fields, self.split) if self.seen else Usage(source="missing")
        call.response_model = self.model or call.response_model
        call.response_id = self.response_id or call.response_id
        call.service_tier = self.service_tier or call.service_tier
        call.finish_reasons = (self.stop_reason,) if self.stop_reason else ()


def batch_result_into(item: Any, call: Call) -> None:
    """One line of `messages.batches.results()`: a succeeded result is a billed call at batch rates."""
    result = get(item, "result")
    kind = get(result, "type")
    call.response_id = given(get(item, "custom_id"))
    if kind == "succeeded":
        MessagesAdapter().finish_into(get(result, "message"), call)
        call.response_id = given(get(item, "custom_id"))
        return
    # errored / canceled / expired requests are not billed: zero tokens, as reported by the provider.
    call.status = "error"
    error = get(get(result, "error"), "error") or get(result, "error")
    call.error_type = str(get(error, "type") or kind or "unknown")
    call.usage = Usage(source="reported")
