"""Provider identity from the endpoint a client talks to, not from the client's class.

`provider_for(host, default)` looks the API host up in the built-in table (exact hosts, and suffixes written
with a leading dot), then in the user's mapping; a host in neither gets `default`. The ids are the
OpenTelemetry `gen_ai.provider.name` values where the conventions define one, else the price data's ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OPENAI = "openai"
AZURE = "azure.ai.openai"
ANTHROPIC = "anthropic"
BEDROCK = "aws.bedrock"
VERTEX = "gcp.vertex_ai"

# host (or ".suffix") -> provider id
HOSTS: Mapping[str, str] = {
    "api.openai.com": OPENAI,
    ".openai.azure.com": AZURE,
    ".services.ai.azure.com": AZURE,
    ".cognitiveservices.azure.com": AZURE,
    "api.anthropic.com": ANTHROPIC,
}


def match_host(host: str, table: Mapping[str, str]) -> str | None:
    """The value for `host` in a table of exact hosts and `.suffix` entries (the longest suffix wins)."""
    host = host.lower().rstrip(".")
    found = table.get(host)
    if found is not None:
        return found
    best: tuple[int, str] | None = None
    for key, value in table.items():
        if key.startswith(".") and host.endswith(key) and (best is None or len(key) > best[0]):
            best = (len(key), value)
    return best[1] if best else None


def provider_for(host: str | None, default: str, user_map: Mapping[str, str] | None = None) -> str:
    if not host:
        return default
    if user_map:
        found = match_host(host, user_map)
        if found is not None:
            return found
    return match_host(host, HOSTS) or default


def client_of(resource: Any) -> Any:
    """The SDK client behind a resource object (`client.chat.completions` -> `client`)."""
    return getattr(resource, "_client", None)


def host_port_of(client: Any) -> tuple[str | None, int | None]:
    base_url = getattr(client, "base_url", None)
    host = getattr(base_url, "host", None)
    port = getattr(base_url, "port", None)
    return (str(host) if host else None), (int(port) if isinstance(port, int) else None)


def host_in(host: str | None, hosts: tuple[str, ...]) -> bool:
    """`host` is one of `hosts` (exact, or under a `.suffix` entry)."""
    if not host:
        return False
    return any(host == h or (h.startswith(".") and host.endswith(h)) for h in hosts)
