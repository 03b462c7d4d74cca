"""The OpenAI SDK's wire formats: request facts, usage and response facts for chat, Responses, embeddings
and legacy completions, and their streams. Also used for OpenAI-compatible endpoints reached through it."""

from __future__ import annotations

from spendmeter.providers.openai.adapters import (
    ChatAdapter,
    ChatStreamUsage,
    EmbeddingsAdapter,
    ResponsesAdapter,
    ResponsesStreamUsage,
)
from spendmeter.providers.openai.request import (
    hide_injected_usage,
    is_injected_usage_chunk,
    request_facts,
    wants_usage_injection,
    with_usage_requested,
)
from spendmeter.providers.openai.usage import chat_usage, embeddings_usage, responses_usage

CHAT = ChatAdapter("chat")
TEXT_COMPLETION = ChatAdapter("text_completion")
RESPONSES = ResponsesAdapter()
EMBEDDINGS = EmbeddingsAdapter()

__all__ = [
    "CHAT",
    "EMBEDDINGS",
    "RESPONSES",
    "TEXT_COMPLETION",
    "ChatAdapter",
    "ChatStreamUsage",
    "EmbeddingsAdapter",
    "ResponsesAdapter",
    "ResponsesStreamUsage",
    "chat_usage",
    "embeddings_usage",
    "hide_injected_usage",
    "is_injected_usage_chunk",
    "request_facts",
    "responses_usage",
    "wants_usage_injection",
    "with_usage_requested",
]
