"""Provider identity from the endpoint a client talks to, not from the client's class.

`identify(host, port, path, user_map)` looks the API endpoint up in the user's mapping first, then in the
built-in table `ENDPOINTS` (exact hosts, `.suffix` entries, optionally `:port` and a `/path` prefix; the most
specific match wins). An endpoint in neither is *unknown*: its provider is the endpoint itself
(`host`, or `host:port` when the URL names a port), shortened to the label length and counted under the
provider label cap like any provider. It is never priced at anybody's rates until the user maps it.

Provider ids are the OpenTelemetry `gen_ai.provider.name` values where the conventions define one
(`openai`, `azure.ai.openai`, `x_ai`, `mistral_ai`, `gcp.gemini`, ...), else the price data's ids
(`openrouter`, `cerebras`, `together`, `fireworks`, `moonshotai`, `zai`). `canonical()` turns the price
data's spellings (`x-ai`, `mistral`, `google`, ...) into these, so a user mapping may use either.

Each row also says how a chat stream there reports usage (`stream_usage`): `"ask"` = the host accepts
`stream_options.include_usage`, so we add it (and hide the extra chunk); `"always"` = it sends usage
unasked (never add anything); `None` = not known (we add nothing; the call is `usage="missing"` unless the
server volunteers usage, and one warning per host says how to enable it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger("spendmeter")

OPENAI = "openai"
AZURE = "azure.ai.openai"
ANTHROPIC = "anthropic"
BEDROCK = "aws.bedrock"
VERTEX = "gcp.vertex_ai"
GEMINI = "gcp.gemini"

StreamUsage = Literal["ask", "always"] | None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One row of the built-in table: where (`host`, `.suffix`, optional `/path` prefix) → which provider."""

    where: str
    provider: str
    stream_usage: StreamUsage = None
    docs: str = ""  # the provider's API reference the row (and its stream_usage) was read from


# Read from each provider's OpenAI-compatible API reference (checked 2026-12-01). `stream_usage` is what the
# reference says about `stream_options.include_usage` / usage in the last chunk.
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("api.openai.com", OPENAI, "ask", "https://platform.openai.com/docs/api-reference/chat"),
    Endpoint(".openai.azure.com", AZURE, "ask", "https://learn.microsoft.com/azure/ai-foundry/openai/reference"),
    Endpoint(".services.ai.azure.com", AZURE, "ask", "https://learn.microsoft.com/azure/ai-foundry/openai/reference"),
    Endpoint(".cognitiveservices.azure.com", AZURE, "ask",
             "https://learn.microsoft.com/azure/ai-foundry/openai/reference"),
    Endpoint("api.anthropic.com", ANTHROPIC, None, "https://docs.anthropic.com/en/api/messages"),
    Endpoint("openrouter.ai", "openrouter", "always", "https://openrouter.ai/docs/use-cases/usage-accounting"),
    Endpoint("api.groq.com", "groq", "ask", "https://console.groq.com/docs/api-reference"),
    Endpoint("api.deepseek.com", "deepseek", "ask", "https://api-docs.deepseek.com/api/create-chat-completion"),
    Endpoint("api.mistral.ai", "mistral_ai", "always", "https://docs.mistral.ai/api/"),
    Endpoint("api.cerebras.ai", "cerebras", "ask", "https://inference-docs.cerebras.ai/api-reference/chat-completions"),
    Endpoint("api.together.xyz", "together", "always", "https://docs.together.ai/reference/chat-completions-1"),
    Endpoint("api.together.ai", "together", "always", "https://docs.together.ai/reference/chat-completions-1"),
    Endpoint("api.fireworks.ai", "fireworks", "always", "https://docs.fireworks.ai/api-reference/post-chatcompletions"),
    Endpoint("api.x.ai", "x_ai", "ask", "https://docs.x.ai/docs/api-reference"),
    Endpoint("api.perplexity.ai", "perplexity", "always", "https://docs.perplexity.ai/api-reference/chat-completions-post"),
    Endpoint("api.moonshot.ai", "moonshotai", "always", "https://platform.moonshot.ai/docs/api/chat"),
    Endpoint("api.moonshot.cn", "moonshotai", "always", "https://platform.moonshot.cn/docs/api/chat"),
    Endpoint("api.z.ai", "zai", "always", "https://docs.z.ai/api-reference/llm/chat-completion"),
    Endpoint("open.bigmodel.cn", "zhipuai", "always", "https://docs.bigmodel.cn/api-reference"),
    Endpoint("generativelanguage.googleapis.com", GEMINI, "ask", "https://ai.google.dev/gemini-api/docs/openai"),
    # More OpenAI-compatible endpoints whose prices the price data has (its `api_pattern`s). How their streams
    # report usage is not in our table: nothing is added to their requests (SPENDMETER_USAGE_HOSTS can).
    Endpoint("api.cohere.ai", "cohere", None, "https://docs.cohere.com/docs/compatibility-api"),
    Endpoint("api.cohere.com", "cohere", None, "https://docs.cohere.com/docs/compatibility-api"),
    Endpoint("api.minimax.io", "minimax", None, "https://platform.minimax.io/docs/api-reference"),
    Endpoint("api.minimaxi.com", "minimax", None, "https://platform.minimaxi.com/docs/api-reference"),
    Endpoint("api.novita.ai", "novita", None, "https://novita.ai/docs/guides/llm-api"),
    Endpoint("api.arcee.ai", "arcee", None, "https://docs.arcee.ai"),
    Endpoint("api.avian.io", "avian", None, "https://avian.io/docs"),
    Endpoint("inference.baseten.co", "baseten", None, "https://docs.baseten.co"),
    Endpoint("api.doubleword.ai", "doubleword", None, "https://docs.doubleword.ai"),
    Endpoint("api.githubcopilot.com", "github-copilot", None, "https://docs.github.com/copilot"),
    Endpoint("oai.endpoints.kepler.ai.cloud.ovh.net", "ovhcloud", None, "https://endpoints.ai.cloud.ovh.net"),
    *(Endpoint(f"router.huggingface.co/{route}", f"huggingface_{route}", None,
               "https://huggingface.co/docs/inference-providers")
      for route in ("cerebras", "fireworks-ai", "groq", "hyperbolic", "nebius", "novita", "nscale", "ovhcloud",
                    "publicai", "sambanova", "together")),
)

# The price data's provider ids (and a few common spellings) -> our provider ids.
_ALIASES: Mapping[str, str] = {
    "x-ai": "x_ai", "xai": "x_ai", "mistral": "mistral_ai", "google": GEMINI, "gemini": GEMINI,
    "azure": AZURE, "azure-openai": AZURE, "bedrock": BEDROCK, "aws": BEDROCK, "vertex": VERTEX,
    "moonshot": "moonshotai", "z.ai": "zai", "together.ai": "together",
}


def canonical(provider: str) -> str:
    name = provider.strip().lower()
    return _ALIASES.get(name, name)


def known_providers() -> frozenset[str]:
    """Every provider id the built-in table can produce (with Bedrock and Vertex, which come from clients)."""
    return frozenset({e.provider for e in ENDPOINTS} | {BEDROCK, VERTEX})


def parse_mapping(text: str) -> dict[str, str]:
    """`"host=provider,host2:8000=provider2"` -> dict. Raises ValueError naming the bad entry."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        where, sep, provider = part.partition("=")
        if not sep or not where.strip() or not provider.strip():
            raise ValueError(f"expected host=provider pairs such as 'localhost:11434=ollama', got {part!r}")
        out[normalize_where(where)] = canonical(provider)
    return out


def normalize_where(where: str) -> str:
    text = where.strip().lower()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    return text.rstrip("/")


# -- matching --------------------------------------------------------------------------------------------------
def _split(where: str) -> tuple[str, int | None, str]:
    hostport, slash, path = where.partition("/")
    host, colon, port = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
    if not colon or not port.isdigit():
        host, port = hostport, ""
    return host, (int(port) if port else None), ("/" + path.strip("/")) if slash and path.strip("/") else ""


def _score(where: str, host: str, port: int | None, path: str) -> int:
    """How specifically `where` matches the endpoint (0: not at all). Exact host > suffix; port, path add."""
    w_host, w_port, w_path = _split(where)
    if w_host.startswith("."):
        if not host.endswith(w_host):
            return 0
        score = len(w_host)
    elif w_host == host:
        score = 1000 + len(w_host)
    else:
        return 0
    if w_port is not None:
        if w_port != port:
            return 0
        score += 10_000
    if w_path:
        if not (path == w_path or path.startswith(w_path + "/")):
            return 0
        score += 100 * len(w_path)
    return score


def match(host: str, port: int | None, path: str, table: Mapping[str, Any]) -> Any:
    """The value of the most specific entry of `table` matching the endpoint, or None."""
    host = host.lower().rstrip(".")
    path = "/" + path.strip("/") if path.strip("/") else ""
    best: tuple[int, Any] | None = None
    for where, value in table.items():
        score = _score(where, host, port, path)
        if score and (best is None or score > best[0]):
            best = (score, value)
    return best[1] if best else None


_TABLE: Mapping[str, Endpoint] = {e.where: e for e in ENDPOINTS}
HOSTS: Mapping[str, str] = {e.where: e.provider for e in ENDPOINTS}  # where -> provider id


def match_host(host: str, table: Mapping[str, str]) -> str | None:
    """The value for `host` in a table of exact hosts and `.suffix` entries (the longest suffix wins)."""
    return match(host, None, "", table)


# Lookups are cached: a client talks to one endpoint many times, and the hot path should pay a dict lookup,
# not a scan of the table. Keys hold the user's mapping itself (so its id cannot be reused while cached);
# mappings are configuration and are not expected to change after init().
_CACHE_LIMIT = 4096
_table_cache: dict[tuple[str, int | None, str], Endpoint | None] = {}
_user_cache: dict[tuple[int, str, int | None, str], tuple[Mapping[str, str], str | None]] = {}


def endpoint_of(host: str | None, port: int | None = None, path: str = "") -> Endpoint | None:
    if not host:
        return None
    key = (host, port, path)
    try:
        return _table_cache[key]
    except KeyError:
        pass
    if len(_table_cache) >= _CACHE_LIMIT:
        _table_cache.clear()
    found = _table_cache[key] = match(host, port, path, _TABLE)
    return found


def _user_match(host: str, port: int | None, path: str, user_map: Mapping[str, str]) -> str | None:
    key = (id(user_map), host, port, path)
    hit = _user_cache.get(key)
    if hit is not None and hit[0] is user_map:
        return hit[1]
    if len(_user_cache) >= _CACHE_LIMIT:
        _user_cache.clear()
    found = match(host, port, path, user_map)
    _user_cache[key] = (user_map, None if found is None else str(found))
    return _user_cache[key][1]


def unknown_label(host: str, port: int | None) -> str:
    """The provider label of an endpoint nobody mapped: the host, with the port when the URL names one."""
    return f"{host.lower()}:{port}" if port is not None else host.lower()


def identify(host: str | None, port: int | None, path: str, default: str,
             user_map: Mapping[str, str] | None = None) -> str:
    """The provider behind an endpoint: the user's mapping, else the table, else the endpoint's own label.

    `default` is used only when the client has no base URL at all (nothing to identify).
    """
    if not host:
        return default
    if user_map:
        found = _user_match(host, port, path, user_map)
        if found is not None:
            return found
    row = endpoint_of(host, port, path)
    return row.provider if row is not None else unknown_label(host, port)


def provider_for(host: str | None, default: str, user_map: Mapping[str, str] | None = None) -> str:
    """Kept for callers that only have a host: like `identify` without port or path."""
    return identify(host, None, "", default, user_map)


def client_of(resource: Any) -> Any:
    """The SDK client behind a resource object (`client.chat.completions` -> `client`)."""
    return getattr(resource, "_client", None)


def _host_port(base_url: Any) -> tuple[str | None, int | None]:
    host = getattr(base_url, "host", None)
    port = getattr(base_url, "port", None)
    return (str(host) if host else None), (int(port) if isinstance(port, int) else None)


_PARTS: dict[int, tuple[Any, tuple[str | None, int | None, str]]] = {}
_NO_DICT: dict[str, Any] = {}


def endpoint_parts(client: Any) -> tuple[str | None, int | None, str]:
    """(host, explicit port or None, base path) of the client's base URL. Cached per URL object when it is an
    httpx URL (immutable: a client given a new base URL holds a new object), so a call pays one lookup."""
    # The URL the SDKs' `base_url` property returns is the one their base client keeps in `_base_url`; read
    # directly, it skips the property's per-call import (openai 3: a fifth of our request-side work). Any other
    # client, or an SDK that renames it, goes through the property (tests/unit/test_endpoints.py checks both).
    base_url = getattr(client, "__dict__", _NO_DICT).get("_base_url")
    if base_url is None:
        base_url = getattr(client, "base_url", None)
    cached = _PARTS.get(id(base_url))
    if cached is not None and cached[0] is base_url:
        return cached[1]
    host, port = _host_port(base_url)
    parts = host, port, str(getattr(base_url, "path", "") or "")
    if type(base_url).__module__.startswith("httpx"):  # immutable URL objects only (httpx, httpx2)
        if len(_PARTS) >= 1000:  # bounded: many short-lived clients must not grow memory
            _PARTS.clear()
        _PARTS[id(base_url)] = (base_url, parts)
    return parts


def host_in(host: str | None, hosts: tuple[str, ...]) -> bool:
    """`host` is one of `hosts` (exact, or under a `.suffix` entry)."""
    if not host:
        return False
    return any(host == h or (h.startswith(".") and host.endswith(h)) for h in hosts)


# -- streams without usage -------------------------------------------------------------------------------------
_warned_hosts: set[str] = set()
_warn_lock = threading.Lock()
_WARN_LIMIT = 1000  # arbitrary hosts must not grow memory forever


def warn_stream_usage_missing(host: str | None) -> None:
    """Once per host: a completed chat stream reported no usage; say how to get it."""
    key = host or "?"
    if key in _warned_hosts:
        return
    with _warn_lock:
        if key in _warned_hosts or len(_warned_hosts) >= _WARN_LIMIT:
            return
        _warned_hosts.add(key)
    log.warning(
        "spendmeter: chat streams to %s report no usage, so they are recorded with usage=\"missing\" and no "
        "cost. If the server accepts stream_options.include_usage, add it to SPENDMETER_USAGE_HOSTS "
        "(or init(usage_hosts=...)), or pass stream_options={\"include_usage\": True} yourself.", key)
