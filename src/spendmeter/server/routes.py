"""What spendmeter answers over HTTP, independent of the server that carries it: `/metrics`, `/api/budgets`,
`/healthz`. The built-in server (server/http.py) and the WSGI app both dispatch through `respond()`, so every
way of serving gives the same answers, guarded the same way (Host allow-list, optional basic auth).

Before each scrape we drain calls whose streams were garbage-collected and refresh the budget gauges, so a
scrape always sees every finished call. With `PROMETHEUS_MULTIPROC_DIR` set, the scrape merges every worker's
files (prometheus_client multiprocess mode): one scrape, the sum over workers.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from spendmeter import recorder
from spendmeter._contain import contain
from spendmeter.runtime.pipeline import current

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Access:
    """Who may ask: the Host names accepted (None: any), and basic-auth credentials (None: no auth)."""

    allowed_hosts: frozenset[str] | None = None
    basic_auth: tuple[str, str] | None = None

    @staticmethod
    def for_bind(host: str, allowed: tuple[str, ...] = (), basic_auth: tuple[str, str] | None = None) -> Access:
        """A server bound to loopback answers only to loopback names (DNS rebinding cannot reach it); one bound
        to a wildcard address answers any Host unless names are given."""
        if allowed:
            return Access(frozenset(h.lower() for h in allowed) | LOOPBACK_NAMES, basic_auth)
        if host in ("", "0.0.0.0", "::"):
            return Access(None, basic_auth)
        return Access(LOOPBACK_NAMES | {host.lower()}, basic_auth)


def scrape_registry(registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """The registry to expose: every worker's values in multiprocess mode, else the given/global one."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir"):
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return merged
    return registry if registry is not None else REGISTRY


def before_scrape() -> None:
    """Finish calls whose streams were garbage-collected, and refresh the budget gauges from the store."""
    with contain("server.before_scrape"):
        recorder.drain()
        guard = current().guard
        if guard is not None:
            guard.refresh_gauges()


def budget_status() -> list[dict[str, Any]]:
    guard = current().guard
    return [] if guard is None else [s.as_dict() for s in guard.status()]


Route = Callable[[Mapping[str, list[str]], CollectorRegistry | None], Response]


def _metrics(query: Mapping[str, list[str]], registry: CollectorRegistry | None) -> Response:
    before_scrape()
    return Response(200, CONTENT_TYPE_LATEST, generate_latest(scrape_registry(registry)))


def _budgets(query: Mapping[str, list[str]], registry: CollectorRegistry | None) -> Response:
    return Response(200, JSON, json.dumps(budget_status(), default=str).encode())


def _health(query: Mapping[str, list[str]], registry: CollectorRegistry | None) -> Response:
    return Response(200, TEXT, b"ok\n")


ROUTES: dict[str, Route] = {"/metrics": _metrics, "/api/budgets": _budgets, "/healthz": _health, "/": _health}
# Paths with an id in them (`/api/costs/users/<id>`): prefix -> route(rest of the path, query, registry).
# The cost API (server/api.py) registers itself into both tables.
PrefixRoute = Callable[[str, Mapping[str, list[str]], CollectorRegistry | None], Response]
PREFIX_ROUTES: dict[str, PrefixRoute] = {}


def find_route(path: str) -> Route | None:
    route = ROUTES.get(path)
    if route is not None:
        return route
    for prefix, prefixed in PREFIX_ROUTES.items():
        if path.startswith(prefix):
            rest = path[len(prefix) :]
            return lambda query, registry: prefixed(rest, query, registry)
    return None


def _host_name(header: str | None) -> str:
    """The name part of a Host header, lower-cased: `example.com:9464` → `example.com`, `[::1]:80` → `[::1]`."""
    if not header:
        return ""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _authorized(header: str | None, expected: tuple[str, str]) -> bool:
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except Exception:
        return False
    # Both compared in constant time, so a wrong user and a wrong password take as long.
    return hmac.compare_digest(user, expected[0]) & hmac.compare_digest(password, expected[1])


def respond(
    method: str,
    path: str,
    query: Mapping[str, list[str]],
    headers: Mapping[str, str],
    access: Access,
    registry: CollectorRegistry | None = None,
) -> Response:
    """One request → one response. Never raises: a failure of ours is a 500, contained and counted."""
    if access.allowed_hosts is not None and _host_name(headers.get("host")) not in access.allowed_hosts:
        return Response(421, TEXT, b"misdirected request: this Host is not served here\n")
    if access.basic_auth is not None and not _authorized(headers.get("authorization"), access.basic_auth):
        return Response(401, TEXT, b"unauthorized\n", (("WWW-Authenticate", 'Basic realm="spendmeter"'),))
    if method not in ("GET", "HEAD"):
        return Response(405, TEXT, b"method not allowed\n", (("Allow", "GET, HEAD"),))
    route = find_route(path)
    if route is None:
        return Response(404, TEXT, b"not found\n")
    kind = next((p for p in PREFIX_ROUTES if path.startswith(p)), path)  # one kind per route, not per id
    with contain(f"server.{kind.strip('/').replace('/', '.') or 'root'}"):
        return route(query, registry)
    return Response(500, TEXT, b"internal error (logged and counted)\n")
