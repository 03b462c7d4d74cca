"""An ASGI "agent" for the uvicorn multi-worker tests: `/call?i=N` makes planned call N of `cost_plan` with
the real SDK against the fake provider; everything else spendmeter serves (`/metrics`, `/api/costs/...`,
`/api/budgets`) is answered by `spendmeter.server.asgi_middleware` in front of the app, from any worker.

Each worker imports this module and calls `spendmeter.init()`: the ledger (SPENDMETER_LEDGER) and the budget
store (the file in SPENDMETER_BUDGETS) are shared by all workers; PROMETHEUS_MULTIPROC_DIR is set by the
launcher before uvicorn starts, so every worker writes its metric files there.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any
from urllib.parse import parse_qs

import anthropic
import openai

import spendmeter
from apps import cost_plan
from spendmeter.server import asgi_middleware
from spendmeter.testing.scenarios import LOCAL_PROVIDERS

spendmeter.init(serve_metrics=False, usage_hosts=("127.0.0.1",), providers=LOCAL_PROVIDERS)
PROVIDER = os.environ["PROVIDER_URL"]
oai = openai.OpenAI(base_url=PROVIDER + "/v1", api_key="sk-test", max_retries=0)
ant = anthropic.Anthropic(base_url=PROVIDER, api_key="sk-ant-test", max_retries=0)
PLAN = cost_plan.plan(int(os.environ.get("PLAN_CALLS", "24")))


def _one(i: int) -> None:
    p = PLAN[i]
    with spendmeter.attribute(user=p.user, feature=p.feature, agent=p.agent, conversation=p.conversation):
        cost_plan.do_call(p, oai, ant)


async def agent(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    status, body = 404, b"not found"
    if scope["path"] == "/call":
        i = int(parse_qs(scope["query_string"].decode())["i"][0])
        await asyncio.to_thread(_one, i)
        status, body = 200, str(os.getpid()).encode()
    elif scope["path"] == "/pid":
        status, body = 200, str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


app = asgi_middleware(agent)
