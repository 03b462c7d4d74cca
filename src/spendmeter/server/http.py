"""spendmeter's own small HTTP server for `/metrics` and the JSON API, on 127.0.0.1:9464 by default.

It stays small and safe next to the host application:
- a bounded pool of handler threads (a request beyond it gets 503 at once, never a new thread);
- a read/idle timeout on every connection, so idle or slow clients cannot hold a thread;
- the Host allow-list and optional basic auth of `routes.Access`, optional TLS (an `ssl` context from a
  certificate and key file);
- client disconnects are not errors (no traceback on the host's stderr); other failures are contained and
  counted like every other failure of ours.

prometheus_client's `start_http_server` offers TLS too, but it serves `/metrics` alone; we serve the JSON API
on the same port, so we keep the stdlib server and reuse prometheus_client's exposition (`generate_latest`).
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, generate_latest

from spendmeter._contain import report
from spendmeter.server.routes import Access, respond, scrape_registry

DEFAULT_MAX_THREADS = 8
DEFAULT_TIMEOUT_S = 10.0
_QUIET = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout, TimeoutError, ssl.SSLError)


class _BoundedServer(HTTPServer):
    daemon_threads = True
    # A listening backlog beyond the pool: connections wait in the kernel, not in our threads.
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_threads: int) -> None:
        self._slots = threading.BoundedSemaphore(max_threads)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            _refuse(request)
            self.shutdown_request(request)
            return
        thread = threading.Thread(target=self._serve, args=(request, client_address), daemon=True)
        thread.start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception as exc:
            self.handle_error(request, client_address, exc)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any, exc: BaseException | None = None) -> None:
        if exc is None or not isinstance(exc, _QUIET):
            report("server.connection")  # logged once per outage, counted; never printed raw to stderr


def _refuse(request: Any) -> None:
    try:
        request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    except OSError:
        pass


class MetricsServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9464,
        registry: CollectorRegistry | None = None,
        *,
        access: Access | None = None,
        tls: ssl.SSLContext | None = None,
        max_threads: int = DEFAULT_MAX_THREADS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.registry = registry
        self.bind_host, self.bind_port = host, port  # as asked (port 0: any free one)
        self.access = access or Access.for_bind(host)
        self.timeout_s = timeout_s
        self.tls = tls
        self._server = _BoundedServer((host, port), self._handler(), max_threads)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="spendmeter-metrics", daemon=True)

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = server.timeout_s  # applies to every read: request line, headers, keep-alive idle

            def do_GET(self) -> None:
                self._answer(head=False)

            def do_HEAD(self) -> None:
                self._answer(head=True)

            def do_POST(self) -> None:
                self._answer(head=False)

            def _answer(self, head: bool) -> None:
                url = urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                response = respond(self.command, url.path, parse_qs(url.query), headers, server.access, server.registry)
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for name, value in response.headers:
                    self.send_header(name, value)
                self.end_headers()
                if not head:
                    self.wfile.write(response.body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def tls_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


def wsgi_metrics_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """`/metrics` (and the JSON API) as a WSGI app, for serving from inside gunicorn/uwsgi workers
    (multiprocess mode). Mounted on any path: a request for a path we do not serve gets `/metrics`."""
    from spendmeter.server.routes import ROUTES

    path = environ.get("PATH_INFO") or "/"
    if path == "/" or path not in ROUTES:
        path = "/metrics"  # mounted at /metrics (PATH_INFO empty or "/"), or a route of the app's own
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    response = respond(
        environ.get("REQUEST_METHOD", "GET"), path, parse_qs(environ.get("QUERY_STRING", "")), headers, Access()
    )
    start_response(
        f"{response.status} {'OK' if response.status == 200 else 'Error'}",
        [("Content-Type", response.content_type), ("Content-Length", str(len(response.body))), *response.headers],
    )
    return [response.body]


__all__ = ["MetricsServer", "generate_latest", "scrape_registry", "tls_context", "wsgi_metrics_app"]
