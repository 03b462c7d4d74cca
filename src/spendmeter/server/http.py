"""`/metrics` for Prometheus, and a small JSON API (`/api/budgets`, `/healthz`), on 127.0.0.1 by default.

Before each scrape we drain calls whose streams were garbage-collected and refresh the budget gauges, so
a scrape always sees every finished call. With `PROMETHEUS_MULTIPROC_DIR` set, the scrape merges every
worker's files (prometheus_client multiprocess mode): one scrape, the sum over workers.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from spendmeter import recorder
from spendmeter._contain import contain
from spendmeter.runtime.pipeline import current


def scrape_registry(registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """The registry to expose: every worker's values in multiprocess mode, else the given/global one."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir"):
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return merged
    return registry if registry is not None else REGISTRY


class MetricsServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9464,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry
        self.bind_host, self.bind_port = host, port  # as asked (port 0: any free one)
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="spendmeter-metrics", daemon=True)

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    before_scrape()
                    body = generate_latest(scrape_registry(server.registry))
                    self._send(200, CONTENT_TYPE_LATEST, body)
                elif path == "/api/budgets":
                    self._send(200, "application/json", json.dumps(budget_status(), default=str).encode())
                elif path in ("/healthz", "/"):
                    self._send(200, "text/plain; charset=utf-8", b"ok\n")
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found\n")

            def _send(self, code: int, content_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


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


def wsgi_metrics_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """`/metrics` as a WSGI app, for serving it from inside gunicorn/uwsgi workers (multiprocess mode)."""
    before_scrape()
    body = generate_latest(scrape_registry())
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
    return [body]
