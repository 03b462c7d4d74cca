"""The cost API: `/api/costs/...`, JSON answers from the ledger, served wherever `/metrics` is (the built-in
server, `asgi_app`, `wsgi_app`), behind the same Host allow-list and basic auth.

Every route takes `from`, `to` (a date, whole day included, or an ISO-8601 time) or `days=N`, and equality
filters (`feature`, `user`, `model`, `agent`, `provider`, `conversation`) where they make sense; an unknown
parameter is a 400 that lists the accepted ones. Costs come as exact decimal strings (`cost_usd`) and as a
float for charts (`cost_usd_float`). Without a ledger every route answers 503 with how to enable one.

Before reading, this process's queued ledger rows are flushed (at most `FLUSH_TIMEOUT_S`), so an answer
includes every call this process finished; other workers' rows land within their writer's flush interval.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from spendmeter.analytics import queries as q
from spendmeter.analytics import views
from spendmeter.analytics.periods import BadInput, window
from spendmeter.analytics.source import LedgerSource, LedgerUnavailable, from_runtime
from spendmeter.runtime.pipeline import current
from spendmeter.server.routes import JSON, PREFIX_ROUTES, ROUTES, Response
from spendmeter.storage import Target

FLUSH_TIMEOUT_S = 2.0
MAX_LIMIT = 1000
PREFIX = "/api/costs"
WINDOW_PARAMS = ("from", "to", "days")
FILTERS = tuple(q.FILTER_COLUMNS)

Query = Mapping[str, list[str]]

_sources: dict[tuple[str, str | None, str | None], LedgerSource] = {}
_sources_lock = threading.Lock()


def ledger_source() -> LedgerSource:
    """The reader of the running spendmeter's ledger (one per target, kept across requests)."""
    runtime = current().runtime
    target: Target = from_runtime(runtime)
    sink = runtime.ledger
    sink.flush(FLUSH_TIMEOUT_S)
    key = (target.kind, target.path, target.dsn)
    with _sources_lock:
        src = _sources.get(key)
        if src is None:
            src = _sources[key] = LedgerSource.open(target)
    return src


def _json(status: int, body: Any) -> Response:
    return Response(status, JSON, json.dumps(body, default=str).encode(), (("Cache-Control", "no-store"),))


def _error(status: int, error: str, message: str) -> Response:
    return _json(status, {"error": error, "message": message})


class QueryParams:
    """The query string, checked against what a route accepts; every value read once, the last one wins."""

    def __init__(self, query: Query, accepted: tuple[str, ...]) -> None:
        unknown = sorted(set(query) - set(accepted))
        if unknown:
            raise BadInput(f"unknown parameter {unknown[0]!r}; this route accepts: {', '.join(accepted)}")
        self.values = {k: v[-1] for k, v in query.items() if v}

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def limit(self, default: int) -> int:
        text = self.values.get("limit")
        if text is None:
            return default
        try:
            n = int(text)
        except ValueError:
            n = 0
        if not 1 <= n <= MAX_LIMIT:
            raise BadInput(f"limit: expected a whole number from 1 to {MAX_LIMIT}, got {text!r}")
        return n

    def window(self, default_days: int | None = None) -> q.Window:
        days = self.get("days")
        if days is None and self.get("from") is None and default_days is not None:
            return window(None, self.get("to"), default_days)
        return window(self.get("from"), self.get("to"), days)

    def filters(self, **fixed: str) -> dict[str, str]:
        return {**{f: self.values[f] for f in FILTERS if f in self.values}, **fixed}


def json_route(accepted: tuple[str, ...], build: Callable[[QueryParams], Any]) -> Callable[[Query, Any], Response]:
    """A route answering `build(params)` as JSON: 400 for a bad query string, 503 without a ledger."""

    def route(query: Query, registry: Any = None) -> Response:
        try:
            params = QueryParams(query, accepted)
            return _json(200, build(params))
        except BadInput as exc:
            return _error(400, "bad_request", str(exc))
        except LedgerUnavailable as exc:
            return _error(503, "no_ledger", str(exc))

    return route


def _grouped(by: tuple[str, ...], *, default_days: int | None, default_limit: int | None, order: str = "cost",
             rename: dict[str, str] | None = None) -> Callable[[QueryParams], Any]:
    def build(p: QueryParams) -> dict[str, Any]:
        w = p.window(default_days)
        filters = p.filters()
        limit = p.limit(default_limit) if default_limit is not None else p.limit(MAX_LIMIT)
        rows = q.grouped(ledger_source(), by, w, filters, limit=limit, order=order)
        return {**views.window_json(w), "filters": filters, "currency": "USD",
                "rows": [views.group_json(g, rename) for g in rows]}

    return build


def accepts(*extra: str, exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The parameters a route takes: the window, `extra`, and every filter but those in `exclude`."""
    return (*WINDOW_PARAMS, *extra, *(f for f in FILTERS if f not in exclude))


def _user(user_id: str, rest: str, p: QueryParams) -> dict[str, Any]:
    src, w = ledger_source(), p.window()
    filters = p.filters(user=user_id)
    body: dict[str, Any] = {**views.window_json(w), "user_id": user_id, "filters": filters, "currency": "USD"}
    if rest in ("", "/days"):
        body["days"] = [views.group_json(g) for g in q.grouped(src, ("day",), w, filters, order="key")]
    if rest == "":
        body["totals"] = views.totals_json(q.total(src, w, filters))
    if rest == "/calls":
        body["calls"] = [views.call_json(c) for c in q.calls(src, w, filters, limit=p.limit(100))]
    return body


def _conversation(conversation: str, p: QueryParams) -> dict[str, Any]:
    src, w = ledger_source(), p.window()
    filters = p.filters(conversation=conversation)
    return {**views.window_json(w), "conversation": conversation, "filters": filters, "currency": "USD",
            "totals": views.totals_json(q.total(src, w, filters)),
            "calls": [views.call_json(c) for c in q.calls(src, w, filters, limit=p.limit(MAX_LIMIT))]}


def _users_prefix(rest: str, query: Query, registry: Any = None) -> Response:
    user_id, _, tail = rest.partition("/")
    tail = "/" + tail if tail else ""
    if not user_id or tail not in ("", "/days", "/calls"):
        return _error(404, "not_found", f"expected {PREFIX}/users/<user_id>[/days|/calls]")
    accepted = accepts("limit", exclude=("user",)) if tail == "/calls" else accepts(exclude=("user",))
    return json_route(accepted, lambda p: _user(unquote(user_id), tail, p))(query)


def _conversations_prefix(rest: str, query: Query, registry: Any = None) -> Response:
    if not rest or "/" in rest:
        return _error(404, "not_found", f"expected {PREFIX}/conversations/<conversation_id>")
    return json_route(accepts("limit", exclude=("conversation",)), lambda p: _conversation(unquote(rest), p))(query)


_BY = {"feature": "feature", "user": "user_id", "model": "model", "agent": "agent", "provider": "provider",
       "conversation": "conversation"}
API_ROUTES: dict[str, Callable[[Query, Any], Response]] = {
    f"{PREFIX}/daily-by-feature": json_route(accepts(), _grouped(("day", "feature"), default_days=30,
                                                              default_limit=None, order="key")),
    f"{PREFIX}/daily": json_route(accepts(), _grouped(("day",), default_days=30, default_limit=None, order="key")),
    f"{PREFIX}/top-users": json_route(accepts("limit", exclude=("user",)),
                                  _grouped(("user",), default_days=None, default_limit=10, rename=_BY)),
    **{f"{PREFIX}/by-{dim}": json_route(accepts("limit", exclude=(dim,)),
                                    _grouped((dim,), default_days=None, default_limit=100, rename=_BY))
       for dim in ("feature", "user", "model", "agent", "provider", "conversation")},
}


def _index(query: Query, registry: Any = None) -> Response:
    return _json(200, {"routes": sorted([*API_ROUTES, f"{PREFIX}/users/<user_id>", f"{PREFIX}/users/<user_id>/days",
                                         f"{PREFIX}/users/<user_id>/calls", f"{PREFIX}/conversations/<id>"]),
                       "parameters": {"window": list(WINDOW_PARAMS), "filters": list(FILTERS), "limit": MAX_LIMIT}})


def register() -> None:
    """Add the cost API to the routes every server dispatches through (idempotent)."""
    ROUTES.update(API_ROUTES)
    ROUTES[PREFIX] = _index
    PREFIX_ROUTES[f"{PREFIX}/users/"] = _users_prefix
    PREFIX_ROUTES[f"{PREFIX}/conversations/"] = _conversations_prefix
    PREFIX_ROUTES[f"{PREFIX}/"] = _unknown  # last: tried after the two above


def _unknown(rest: str, query: Query, registry: Any = None) -> Response:
    return _error(404, "not_found", f"no such route {PREFIX}/{rest}; {PREFIX} lists them")


register()
