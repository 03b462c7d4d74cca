"""The cost API over real HTTP after real SDK calls: the built-in server (beside /metrics, same auth), the
ASGI app and the WSGI app give the same answers, and every route's numbers match what the fake provider
served (tests/integration/apps/cost_plan.py derives them from its recorded requests)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from apps import cost_plan
from prometheus_client import CollectorRegistry

import spendmeter
from spendmeter.pricing import load_pricebook
from spendmeter.server import asgi_app, asgi_middleware, wsgi_app, wsgi_middleware
from spendmeter.testing.scenarios import LOCAL_PROVIDERS

AUTH = ("metrics", "s3cret")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, auth: tuple[str, str] | None = AUTH) -> tuple[int, Any]:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, json.loads(body) if exc.headers.get_content_type() == "application/json" else body


def asgi_get(app: Any, path: str, query: str = "", root_path: str = "") -> tuple[int, Any]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "method": "GET", "path": path, "raw_path": path.encode(),
             "root_path": root_path, "query_string": query.encode(), "headers": [(b"host", b"app.example")]}
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body) if body[:1] in (b"{", b"[") else body


def wsgi_get(app: Any, path: str, query: str = "") -> tuple[int, Any]:
    status: list[str] = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query, "HTTP_HOST": "app.example"}
    body = b"".join(app(environ, lambda s, h: status.append(s)))
    return int(status[0].split()[0]), json.loads(body) if body[:1] in (b"{", b"[") else body


@pytest.fixture
def live(pipeline, provider_server, oai, ant, tmp_path: Path):
    import anthropic
    import openai

    oai = openai.OpenAI(base_url=provider_server.openai_base_url, api_key="sk-test", max_retries=0)
    ant = anthropic.Anthropic(base_url=provider_server.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
    rt = spendmeter.init(prometheus_port=_free_port(), registry=CollectorRegistry(), usage_hosts=("127.0.0.1",),
                         providers=LOCAL_PROVIDERS, ledger=f"sqlite:///{tmp_path / 'ledger.db'}",
                         metrics_auth=":".join(AUTH))
    provider_server.clear()
    for p in cost_plan.plan():
        with spendmeter.attribute(user=p.user, feature=p.feature, agent=p.agent, conversation=p.conversation):
            cost_plan.do_call(p, oai, ant)
    yield rt, cost_plan.served(provider_server, load_pricebook(None))
    spendmeter.shutdown()


def test_every_route_matches_what_the_provider_served(live) -> None:
    rt, served = live
    base = rt.server.url

    def three_ways(path: str, query: str = "") -> Any:
        """The built-in server, the ASGI app and the WSGI app must answer the same."""
        status, body = get(f"{base}{path}?{query}")
        assert status == 200, body
        assert asgi_get(asgi_app, path, query) == (200, body)
        assert wsgi_get(wsgi_app, path, query) == (200, body)
        return body

    for route, by in (("daily-by-feature", ("day", "feature")), ("top-users", ("user_id",)),
                      ("by-model", ("model",)), ("by-agent", ("agent",)), ("by-provider", ("provider",)),
                      ("by-feature", ("feature",)), ("by-conversation", ("conversation",)), ("daily", ("day",))):
        body = three_ways(f"/api/costs/{route}", "limit=1000" if route not in ("daily-by-feature", "daily") else "")
        dims = tuple("user" if d == "user_id" else d for d in by)
        assert cost_plan.observed(body["rows"], by) == cost_plan.expect(served, dims), route
        assert all(r["cost_usd_float"] == float(Decimal(r["cost_usd"])) for r in body["rows"])

    top = three_ways("/api/costs/top-users", "limit=2")
    want = sorted(cost_plan.expect(served, ("user",)).items(), key=lambda kv: -kv[1]["cost"])[:2]
    assert [r["user_id"] for r in top["rows"]] == [k[0] for k, _ in want]

    one = three_ways("/api/costs/users/alice")
    mine = [c for c in served if c.attr["user"] == "alice"]
    assert Decimal(one["totals"]["cost_usd"]) == sum((c.cost for c in mine), Decimal(0))
    assert one["totals"]["calls"] == len(mine) and len(one["days"]) == 1
    calls = three_ways("/api/costs/users/alice/calls", "limit=1000")["calls"]
    assert sorted(Decimal(c["cost_usd"] or 0) for c in calls) == sorted(c.cost for c in mine)
    assert sorted(c["tokens"] for c in calls) == sorted(c.usage.total for c in mine)
    assert three_ways("/api/costs/users/alice/days")["days"] == one["days"]

    conv = three_ways("/api/costs/conversations/conv-3")
    in_conv = [c for c in served if c.attr["conversation"] == "conv-3"]
    assert Decimal(conv["totals"]["cost_usd"]) == sum((c.cost for c in in_conv), Decimal(0))
    assert {c["user_id"] for c in conv["calls"]} == {c.attr["user"] for c in in_conv}

    filtered = three_ways("/api/costs/by-model", "feature=support&from=2000-01-01")
    assert cost_plan.observed(filtered["rows"], ("model",)) == cost_plan.expect(
        served, ("model",), lambda c: c.attr["feature"] == "support")
    assert three_ways("/api/costs/top-users", "to=2000-01-01")["rows"] == []


def test_bad_parameters_unknown_routes_and_auth(live) -> None:
    rt, _ = live
    base = rt.server.url
    status, body = get(f"{base}/api/costs/top-users?limt=5")
    assert status == 400 and "limt" in body["message"] and "limit" in body["message"]
    for query in ("days=0", "limit=-1", "from=yesterday", "days=3&from=2025-01-01"):
        status, body = get(f"{base}/api/costs/daily-by-feature?{query}")
        assert status == 400 and body["error"] == "bad_request", query
    status, body = get(f"{base}/api/costs/nope")
    assert status == 404 and body["error"] == "not_found"
    assert get(f"{base}/api/costs")[1]["routes"]
    assert get(f"{base}/api/costs/top-users", auth=None)[0] == 401  # the same auth as /metrics
    assert get(f"{base}/api/costs/top-users", auth=("metrics", "wrong"))[0] == 401


def test_without_a_ledger_the_routes_say_how_to_enable_one(pipeline) -> None:
    spendmeter.init(serve_metrics=False, registry=CollectorRegistry())
    try:
        status, body = asgi_get(asgi_app, "/api/costs/top-users")
        assert status == 503 and body["error"] == "no_ledger" and "SPENDMETER_LEDGER" in body["message"]
        assert wsgi_get(wsgi_app, "/api/costs/daily-by-feature")[0] == 503
    finally:
        spendmeter.shutdown()


def test_middlewares_and_mounts_answer_without_redirects(live) -> None:
    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"app": true}'})

    def inner_wsgi(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b'{"app": true}']

    app, wapp = asgi_middleware(inner), wsgi_middleware(inner_wsgi)
    assert asgi_get(app, "/orders") == (200, {"app": True})
    assert wsgi_get(wapp, "/orders") == (200, {"app": True})
    assert asgi_get(app, "/healthz") == (200, {"app": True})  # the application's own health check wins
    assert wsgi_get(wapp, "/") == (200, {"app": True})
    status, body = asgi_get(app, "/metrics")
    assert status == 200 and b"llm_cost_usd_total" in body
    assert asgi_get(app, "/api/costs/by-provider")[0] == 200
    assert wsgi_get(wapp, "/api/costs/by-provider")[0] == 200
    # Mounted under a prefix (Starlette's Mount keeps the full path and sets root_path).
    assert asgi_get(asgi_app, "/spendmeter/api/costs/by-provider", root_path="/spendmeter")[0] == 200
    assert asgi_get(asgi_app, "/spendmeter/metrics", root_path="/spendmeter")[0] == 200


def test_dead_workers_are_marked_at_scrape_time(tmp_path: Path) -> None:
    """uvicorn has no child_exit hook: a worker's pid in the multiprocess files that no longer runs is marked
    dead at the next scrape, so its live gauges go; its counters stay (its calls were made)."""
    import subprocess
    import sys

    from spendmeter.server import mark_dead_workers

    code = ("from prometheus_client import Counter, Gauge; Gauge('g', 'g', multiprocess_mode='livesum').set(3); "
            "Counter('c', 'c').inc(2); import os; print(os.getpid())")
    out = subprocess.run([sys.executable, "-c", code], env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
                         capture_output=True, text=True, check=True)
    pid = int(out.stdout)
    assert {p.name for p in tmp_path.iterdir()} == {f"gauge_livesum_{pid}.db", f"counter_{pid}.db"}
    assert mark_dead_workers(str(tmp_path)) == [pid]
    assert {p.name for p in tmp_path.iterdir()} == {f"counter_{pid}.db"}
    assert mark_dead_workers(str(tmp_path)) == [pid]  # again: harmless
