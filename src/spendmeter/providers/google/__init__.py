"""Google Gen AI SDK (`google-genai`): Gemini Developer API and Vertex AI. See docs/google.md."""

from __future__ import annotations

from spendmeter.providers.google.adapters import (
    EmbedAdapter,
    GenerateAdapter,
    GenerateStreamUsage,
    model_name,
    provider_of,
)
from spendmeter.providers.google.usage import embed_usage, generate_usage

GENERATE = GenerateAdapter(stream=False)
GENERATE_STREAM = GenerateAdapter(stream=True)
EMBED = EmbedAdapter()

__all__ = [
    "EMBED",
    "GENERATE",
    "GENERATE_STREAM",
    "EmbedAdapter",
    "GenerateAdapter",
    "GenerateStreamUsage",
    "embed_usage",
    "generate_usage",
    "model_name",
    "provider_of",
]
