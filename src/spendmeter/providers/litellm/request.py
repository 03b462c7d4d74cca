"""Request facts for a LiteLLM call: which provider LiteLLM routes it to (from LiteLLM's own router, then the
endpoint), the model as that provider names it, the request's user id, and asking a chat stream for usage
where the endpoint accepts `stream_options` (LiteLLM asks only when `api_base` is OpenAI's own)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from spendmeter.providers.base import RequestFacts, RequestOptions
from spendmeter.providers.endpoints import ANTHROPIC, AZURE, BEDROCK, GEMINI, OPENAI, VERTEX, canonical, host_in
from spendmeter.providers.fields import get, given, max_tokens_of

# LiteLLM's provider ids whose spelling differs from ours (the rest go through `endpoints.canonical`).
_PROVIDERS: Mapping[str, str] = {
    "openai": OPENAI,
    "text-completion-openai": OPENAI,
    "azure": AZURE,
    "azure_text": AZURE,
    "anthropic": ANTHROPIC,
    "anthropic_text": ANTHROPIC,
    "bedrock": BEDROCK,
    "sagemaker": "aws.sagemaker",
    "vertex_ai": VERTEX,
    "vertex_ai_beta": VERTEX,
    "gemini": GEMINI,
    "xai": "x_ai",
    "mistral": "mistral_ai",
    "codestral": "mistral_ai",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "deepseek": "deepseek",
    "groq": "groq",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
    "moonshot": "moonshotai",
}
# Routes that only say "some OpenAI-compatible server": the endpoint tells who it is, when the table knows it.
_GENERIC = frozenset({"openai", "custom_openai", "openai_like", "hosted_vllm", "text-completion-openai"})


def route(kwargs: dict[str, Any]) -> tuple[str, str, str | None]:
    """(LiteLLM provider id, model without the route prefix, api_base) as LiteLLM itself resolves them."""
    model = str(given(kwargs.get("model")) or "")
    api_base = given(kwargs.get("api_base")) or given(kwargs.get("base_url"))
    try:
        from litellm import get_llm_provider

        resolved, provider, _key, base = get_llm_provider(
            model=model, custom_llm_provider=given(kwargs.get("custom_llm_provider")), api_base=api_base
        )
        return str(provider), str(resolved), (str(base) if base else api_base)
    except Exception:  # an unknown route: LiteLLM will raise for it itself; keep what the caller said
        prefix, sep, rest = model.partition("/")
        return (prefix, rest, api_base) if sep else ("openai", model, api_base)


def provider_of(litellm_provider: str, api_base: str | None, options: RequestOptions) -> str:
    """Our provider id. A named route (`deepseek/`, `anthropic/`, `azure/`) is LiteLLM's routing decision and
    wins; a generic OpenAI-compatible route (`openai/` with an `api_base`, `hosted_vllm/`) is identified by its
    endpoint: the user's mapping, then the endpoint table, else LiteLLM's name for it."""
    if litellm_provider in _GENERIC:
        host, port, path = _endpoint(api_base)
        if host:
            from spendmeter.providers import endpoints

            user_map = getattr(options, "providers", None)
            found = endpoints.match(host, port, path, user_map) if user_map else None
            if found is None and (row := endpoints.endpoint_of(host, port, path)) is not None:
                found = row.provider
            if found is not None:
                return str(found)
    return _PROVIDERS.get(litellm_provider) or canonical(litellm_provider)


def _endpoint(api_base: str | None) -> tuple[str | None, int | None, str]:
    if not api_base:
        return None, None, ""
    try:
        parts = urlsplit(api_base if "//" in api_base else "//" + api_base)
        return parts.hostname, parts.port, parts.path or ""
    except ValueError:
        return None, None, ""


def request_facts(operation: str, kwargs: dict[str, Any], options: RequestOptions) -> RequestFacts:
    litellm_provider, model, api_base = route(kwargs)
    host, port, _path = _endpoint(api_base)
    user = given(kwargs.get("user")) or given(get(given(kwargs.get("metadata")), "user_id"))
    facts = RequestFacts(
        provider=provider_of(litellm_provider, api_base, options),
        operation=operation,
        model=model or None,
        stream=bool(given(kwargs.get("stream"))),
        user=str(user) if user else None,
        service_tier=given(kwargs.get("service_tier")),
        max_tokens=max_tokens_of(kwargs),
        server_address=host,
        server_port=port,
    )
    if options.capture_content:
        for name in ("messages", "input", "prompt"):
            value = given(kwargs.get(name))
            if value is not None:
                facts.capture = {"input": value, "system": given(kwargs.get("instructions"))}
                break
    if facts.stream and operation in ("chat", "text_completion") and _ask_stream_usage(host, kwargs, options):
        facts.send_kwargs = {**kwargs, "stream_options": {"include_usage": True}}
        facts.hide = is_usage_chunk
    return facts


def _ask_stream_usage(host: str | None, kwargs: dict[str, Any], options: RequestOptions) -> bool:
    """Ask for stream usage only where the endpoint is known to accept it, and never over the caller."""
    if given(kwargs.get("stream_options")) is not None:
        return False
    if host_in(host, options.usage_hosts):
        return True
    from spendmeter.providers import endpoints

    row = endpoints.endpoint_of(host) if host else None
    return row is not None and row.stream_usage == "ask"


def is_usage_chunk(chunk: Any) -> bool:
    """LiteLLM's usage-only final chunk (no choices, usage set): it exists only because we asked for it."""
    return not get(chunk, "choices") and get(chunk, "usage") is not None
