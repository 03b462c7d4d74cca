"""A WSGI "agent" for the multi-worker test: each request makes one real openai SDK call to the local server.

Run under gunicorn with PROMETHEUS_MULTIPROC_DIR set (before anything imports prometheus_client), each
worker calls `spendmeter.init(serve_metrics=False)`, and `/metrics` is served by any worker from the merged
files of all workers: `spendmeter.server.wsgi_metrics_app`.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs

import openai

import spendmeter
from spendmeter.server import wsgi_metrics_app
from spendmeter.testing.scenarios import LOCAL_PROVIDERS

spendmeter.init(serve_metrics=False, usage_hosts=("127.0.0.1",), providers=LOCAL_PROVIDERS)
client = openai.OpenAI(base_url=os.environ["PROVIDER_URL"] + "/v1", api_key="sk-test", max_retries=0)


def app(environ, start_response):
    if environ["PATH_INFO"] == "/metrics":
        return wsgi_metrics_app(environ, start_response)
    query = parse_qs(environ.get("QUERY_STRING", ""))
    with spendmeter.attribute(user=query.get("user", ["anon"])[0], feature="support"):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={
                "x-fake-usage": "input=176,cached=1024,output=100",
                # a slow answer keeps this worker busy, so concurrent requests must spread over the others
                "x-fake-scenario": "slow" if query.get("slow") else "ok",
            },
        )
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
