"""The fake provider's routes: which path is which provider's endpoint, and the record of a request."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spendmeter.testing import anthropic_wire as anth
from spendmeter.testing import gemini_wire as gem
from spendmeter.testing import openai_responses_wire as oai_resp
from spendmeter.testing import openai_wire as oai
from spendmeter.testing.scenarios import Reply

OPENAI, ANTHROPIC, GEMINI = "openai", "anthropic", "gemini"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any] | None


Endpoint = Callable[..., Reply]  # (body, headers, **path groups) -> Reply
_DEPLOYMENT = r"/openai/deployments/(?P<deployment>[^/]+)"
_VERTEX = r"/v1/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/(?P<model>[^/:]+)"
# Gemini Developer API (`/v1beta/models/...`; LiteLLM's `gemini/` with a bare api_base drops the version) and
# Vertex AI (project/location resource names, or express mode).
_GEMINI = (
    r"(?:/v1|/v1beta|/v1alpha|/v1beta1)?/(?:projects/[^/]+/locations/[^/]+/)?(?:publishers/google/)?"
    r"models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent|embedContent"
    r"|batchEmbedContents|predict)"
)


def routes(batches: anth.BatchStore) -> list[tuple[str, re.Pattern[str], str, Endpoint]]:
    """(method, path pattern, provider, endpoint); paths match in full, the query string is ignored."""
    table: list[tuple[str, str, str, Endpoint]] = [
        ("POST", r"/(?:openai/)?v1/chat/completions", OPENAI, oai.chat_endpoint),
        ("POST", _DEPLOYMENT + r"/chat/completions", OPENAI, oai.chat_endpoint),
        ("POST", r"/(?:openai/)?v1/completions", OPENAI, oai.completions_endpoint),
        ("POST", _DEPLOYMENT + r"/completions", OPENAI, oai.completions_endpoint),
        ("POST", r"/(?:openai/)?v1/embeddings", OPENAI, oai.embeddings_endpoint),
        ("POST", _DEPLOYMENT + r"/embeddings", OPENAI, oai.embeddings_endpoint),
        # OpenAI: /v1/responses; AzureOpenAI, with or without a deployment: /openai/responses; Azure v1 API.
        ("POST", r"/(?:openai/v1|openai|v1)/responses", OPENAI, oai_resp.responses_endpoint),
        ("POST", r"/v1/messages", ANTHROPIC, anth.messages_endpoint),  # `?beta=true` lands here too
        ("POST", r"/v1/messages/count_tokens", ANTHROPIC, anth.count_tokens_endpoint),
        ("POST", r"/v1/messages/batches", ANTHROPIC, batches.create),
        ("GET", r"/v1/messages/batches/(?P<batch>[^/]+)", ANTHROPIC, batches.retrieve),
        ("GET", r"/v1/messages/batches/(?P<batch>[^/]+)/results", ANTHROPIC, batches.results),
        ("POST", _VERTEX + r":(?P<specifier>rawPredict|streamRawPredict)", ANTHROPIC, anth.vertex_endpoint),
        ("POST", r"/model/(?P<model>[^/]+)/invoke", ANTHROPIC, anth.bedrock_endpoint),
        ("POST", _GEMINI, GEMINI, gem.model_endpoint),
    ]
    return [(method, re.compile(path), provider, fn) for method, path, provider, fn in table]


def provider_for_path(path: str) -> str:
    if ":" in path.rsplit("/", 1)[-1] and "/publishers/anthropic/" not in path:
        return GEMINI  # `models/<model>:<method>`
    return ANTHROPIC if path.startswith(("/v1/messages", "/v1/projects", "/model/")) else OPENAI
