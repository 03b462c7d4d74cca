"""The Anthropic SDK's wire formats: Messages (plain, streamed, beta; first-party, Bedrock, Vertex) and
message batch results."""

from __future__ import annotations

from spendmeter.providers.anthropic.batches import BatchResultsAdapter
from spendmeter.providers.anthropic.messages import MessagesAdapter, MessageStreamUsage, provider_of, request_user
from spendmeter.providers.anthropic.usage import message_usage

MESSAGES = MessagesAdapter()
BATCH_RESULTS = BatchResultsAdapter()

__all__ = [
    "BATCH_RESULTS",
    "MESSAGES",
    "BatchResultsAdapter",
    "MessageStreamUsage",
    "MessagesAdapter",
    "message_usage",
    "provider_of",
    "request_user",
]
