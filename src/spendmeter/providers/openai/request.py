"""Request facts for every OpenAI-SDK call: the provider from the endpoint, the request's own user id,
Azure deployments, and asking a chat stream for its usage where the endpoint accepts it."""

from __future__ import annotations

from typing import Any

from spendmeter.providers.base import RequestFacts, RequestOptions
from spendmeter.providers.endpoints import AZURE, OPENAI, client_of, endpoint_of, endpoint_parts, host_in, identify
from spendmeter.providers.fields import fast_fields, get, given, max_tokens_of


def request_facts(operation: str, resource: Any, kwargs: dict[str, Any], options: RequestOptions) -> RequestFacts:
    client = client_of(resource)
    host, port, base_path = endpoint_parts(client)
    azure_client = "Azure" in type(client).__name__
    # The endpoint decides (an OpenAI client talks to many providers); a client without a base URL (a test
    # double) is the SDK's own provider.
    provider = AZURE if azure_client else identify(host, port, base_path, OPENAI, options.providers)
    model = given(kwargs.get("model"))
    user = given(kwargs.get("user")) or given(kwargs.get("safety_identifier"))
    stream = bool(given(kwargs.get("stream")))
    facts = RequestFacts(
        provider=provider,
        operation=operation,
        model=str(model) if model is not None else None,
        stream=stream,
        user=str(user) if user else None,
        service_tier=given(kwargs.get("service_tier")),
        max_tokens=max_tokens_of(kwargs),
        deployment=deployment_of(client, kwargs) if provider == AZURE else None,
        server_address=host,
        server_port=port,
    )
    if options.capture_content:
        facts.capture = capture_of(kwargs)
    if stream and operation in ("chat", "text_completion") and wants_usage_injection(host, kwargs, options, port):
        facts.send_kwargs = with_usage_requested(kwargs)
        facts.hide = hide_injected_usage
    return facts


def deployment_of(client: Any, kwargs: dict[str, Any]) -> str | None:
    """On Azure the `model` argument names a deployment (unless the client is bound to one)."""
    return getattr(client, "_azure_deployment", None) or given(kwargs.get("model"))


def wants_usage_injection(
    host: str | None, kwargs: dict[str, Any], options: RequestOptions, port: int | None = None
) -> bool:
    """Ask a chat/completions stream for usage only where the endpoint is known to accept `stream_options`
    (the table's `"ask"` rows, plus the user's usage hosts), and never where it sends usage unasked."""
    stream_options = given(kwargs.get("stream_options"))
    if isinstance(stream_options, dict) and "include_usage" in stream_options:
        return False  # the caller decided; respect it either way
    extra = given(kwargs.get("extra_body"))
    if isinstance(extra, dict) and isinstance(extra.get("stream_options"), dict) and (
            "include_usage" in extra["stream_options"]):
        return False  # decided in the raw body
    if host_in(host, options.usage_hosts):
        return True
    row = endpoint_of(host, port)
    return row is not None and row.stream_usage == "ask"


def with_usage_requested(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The kwargs with `stream_options.include_usage` set. Into the caller's own `stream_options` when there
    are some; else into `extra_body`, which the SDK merges into the JSON as it is: the same request body,
    without the per-call type transformation that a `stream_options` argument costs (tens of µs)."""
    stream_options = given(kwargs.get("stream_options"))
    if isinstance(stream_options, dict):
        return {**kwargs, "stream_options": {**stream_options, "include_usage": True}}
    extra = given(kwargs.get("extra_body"))
    body = dict(extra) if isinstance(extra, dict) else {}
    options = body.get("stream_options")
    body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return {**kwargs, "extra_body": body}


def is_injected_usage_chunk(chunk: Any) -> bool:
    """The usage-only final chunk that exists only because we asked for it: no choices, usage set."""
    return not get(chunk, "choices") and get(chunk, "usage") is not None


def hide_injected_usage(chunk: Any) -> bool:
    """For a stream where *we* asked for usage: True for the usage-only chunk (dropped before the caller
    sees it). Every other chunk is given back, but asking made the server add `"usage": null` to each of
    them; we unmark that field as set, so `model_dump(exclude_unset=True)` and `to_json()` read exactly as
    in a run without spendmeter (the value was None either way)."""
    fields = fast_fields(chunk)
    if fields is not None:  # the SDK's own chunk class: one dict read per field
        if not fields.get("choices") and fields.get("usage") is not None:
            return True
        fields_set = chunk.__pydantic_fields_set__
        if "usage" in fields_set and fields.get("usage") is None:
            fields_set.discard("usage")
        return False
    if is_injected_usage_chunk(chunk):
        return True
    fields_set = getattr(chunk, "__pydantic_fields_set__", None)
    if fields_set is not None and "usage" in fields_set and getattr(chunk, "usage", None) is None:
        fields_set.discard("usage")
    return False


def capture_of(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    for name in ("messages", "input", "prompt"):
        value = given(kwargs.get(name))
        if value is not None:
            return {"input": value, "system": given(kwargs.get("instructions"))}
    return None
