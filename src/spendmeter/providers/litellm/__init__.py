"""LiteLLM: one Call per `litellm.completion` / `acompletion` / `text_completion` / `embedding` /
`responses` call (and their async forms), whichever provider LiteLLM routes it to. See docs/litellm.md."""

from __future__ import annotations

from spendmeter.providers.litellm.adapters import (
    CompletionAdapter,
    ResponsesAdapter,
    ResponsesStreamUsage,
    StreamUsage,
)
from spendmeter.providers.litellm.request import is_usage_chunk, provider_of, request_facts, route
from spendmeter.providers.litellm.usage import chat_usage, is_unreported, responses_usage

CHAT = CompletionAdapter("chat")
TEXT_COMPLETION = CompletionAdapter("text_completion")
EMBEDDINGS = CompletionAdapter("embeddings")
RESPONSES = ResponsesAdapter()

__all__ = [
    "CHAT",
    "EMBEDDINGS",
    "RESPONSES",
    "TEXT_COMPLETION",
    "CompletionAdapter",
    "ResponsesAdapter",
    "ResponsesStreamUsage",
    "StreamUsage",
    "chat_usage",
    "is_unreported",
    "is_usage_chunk",
    "provider_of",
    "request_facts",
    "responses_usage",
    "route",
]
