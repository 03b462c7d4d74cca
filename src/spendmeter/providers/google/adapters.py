"""Google Gen AI (`google-genai`) adapters: `Models._generate_content` / `_generate_content_stream` (one
billed request each: the public methods loop over them for automatic function calling and automatic
continuation) and `embed_content`, sync and async. Chats are built on the same methods.

Provider: the client's mode, as the GenAI conventions name it: Vertex AI (`gcp.vertex_ai`) or the Gemini
Developer API (`gcp.gemini`). Model: as the pricing data names it (`models/`, `publishers/google/models/`
and full resource-name prefixes removed); the served `model_version` wins when the response has one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from spendmeter.providers.base import RequestFacts, RequestOptions, ResponseFacts
from spendmeter.providers.endpoints import GEMINI, VERTEX
from spendmeter.providers.fields import get, given
from spendmeter.providers.google.usage import embed_usage, generate_usage


def model_name(model: Any) -> str | None:
    """`projects/p/locations/l/publishers/google/models/gemini-2.5-pro` → `gemini-2.5-pro` (tuned models kept)."""
    if not model:
        return None
    name = str(model)
    for marker in ("/models/", "models/", "google/"):
        if marker in name and not name.startswith("tunedModels/"):
            name = name.rsplit(marker, 1)[-1]
            break
    return name or None


def _api_client(resource: Any) -> Any:
    return getattr(resource, "_api_client", None)


def provider_of(resource: Any) -> str:
    return VERTEX if getattr(_api_client(resource), "vertexai", False) else GEMINI


def _server(resource: Any) -> tuple[str | None, int | None]:
    options = getattr(_api_client(resource), "_http_options", None)
    base = get(options, "base_url")
    if not base:
        return None, None
    try:
        parts = urlsplit(str(base))
        return parts.hostname, parts.port
    except ValueError:
        return None, None


def _config(kwargs: dict[str, Any]) -> Any:
    return given(kwargs.get("config"))


def _enum(value: Any) -> str:
    return str(getattr(value, "value", value))


class GenerateAdapter:
    """generate_content (stream=False) or generate_content_stream (stream=True)."""

    operation = "generate_content"  # the GenAI conventions' gen_ai.operation.name for Gemini

    def __init__(self, stream: bool) -> None:
        self.stream = stream

    def request(self, resource: Any, kwargs: dict[str, Any], options: RequestOptions) -> RequestFacts:
        host, port = _server(resource)
        config = _config(kwargs)
        max_tokens = get(config, "max_output_tokens")
        facts = RequestFacts(
            provider=provider_of(resource),
            operation=self.operation,
            model=model_name(kwargs.get("model")),
            stream=self.stream,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            server_address=host,
            server_port=port,
        )
        if options.capture_content and kwargs.get("contents") is not None:
            facts.capture = {"input": kwargs.get("contents"), "system": get(config, "system_instruction")}
        return facts

    def response(self, obj: Any) -> ResponseFacts:
        reasons = tuple(_enum(r) for c in get(obj, "candidates") or () if (r := get(c, "finish_reason")))
        return ResponseFacts(
            usage=generate_usage(get(obj, "usage_metadata")),
            model=model_name(get(obj, "model_version")),
            response_id=given(get(obj, "response_id")),
            finish_reasons=reasons,
        )

    def accumulator(self) -> GenerateStreamUsage:
        return GenerateStreamUsage()


class GenerateStreamUsage:
    """A streamGenerateContent stream: every chunk may carry `usage_metadata`, each a running total (the last
    one is the call's); the served model and response id come with the chunks."""

    __slots__ = ("finish_reasons", "meta", "model", "response_id")

    def __init__(self) -> None:
        self.meta: Any = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.finish_reasons: list[str] = []

    def observe(self, chunk: Any) -> None:
        meta = get(chunk, "usage_metadata")
        if meta is not None:
            self.meta = meta
        if self.model is None:
            self.model = model_name(get(chunk, "model_version"))
            self.response_id = given(get(chunk, "response_id"))
        for candidate in get(chunk, "candidates") or ():
            reason = get(candidate, "finish_reason")
            if reason:
                self.finish_reasons.append(_enum(reason))

    def facts(self) -> ResponseFacts:
        return ResponseFacts(
            usage=generate_usage(self.meta),
            model=self.model,
            response_id=self.response_id,
            finish_reasons=tuple(self.finish_reasons),
        )


class EmbedAdapter:
    operation = "embeddings"

    def request(self, resource: Any, kwargs: dict[str, Any], options: RequestOptions) -> RequestFacts:
        host, port = _server(resource)
        return RequestFacts(
            provider=provider_of(resource),
            operation=self.operation,
            model=model_name(kwargs.get("model")),
            server_address=host,
            server_port=port,
        )

    def response(self, obj: Any) -> ResponseFacts:
        return ResponseFacts(usage=embed_usage(obj))

    def accumulator(self) -> GenerateStreamUsage:  # embeddings never stream
        return GenerateStreamUsage()
