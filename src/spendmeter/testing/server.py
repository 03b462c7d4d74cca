"""A local HTTP server that speaks enough of the OpenAI and Anthropic APIs for their real SDKs.

Tests (spendmeter's own, and users' tests of their instrumented agents) and `spendmeter demo` point the
real `openai` and `anthropic` clients at it, so they run without keys or network:

    with ProviderServer() as srv:
        client = openai.OpenAI(base_url=srv.openai_base_url, api_key="test")
        client.chat.completions.create(model="gpt-4o-mini", messages=[...],
                                       extra_headers={"x-fake-usage": "input=176,cached=1024,output=100"})
        srv.requests[-1].headers["x-stainless-retry-count"]

Stdlib only (`ThreadingHTTPServer` in a daemon thread), HTTP/1.1 keep-alive: JSON bodies carry
`Content-Length`, streams use chunked transfer encoding so a cut stream (`stream-cut`) looks like one to the
client. Scenario headers and their knobs live in `scenarios`; wire formats in `openai_wire`,
`openai_responses_wire` and `anthropic_wire`. From a shell: `python -m spendmeter.testing.server`.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from spendmeter.testing import anthropic_wire as anth
from spendmeter.testing import gemini_wire as gem
from spendmeter.testing import openai_responses_wire as oai_resp
from spendmeter.testing import openai_wire as oai
from spendmeter.testing.routes import ANTHROPIC, GEMINI, OPENAI, Endpoint, RecordedRequest, provider_for_path, routes
from spendmeter.testing.scenarios import (
    CHUNKS_BEFORE_FAILURE,
    HEADER_KEY,
    RETRY_AFTER_MS,
    SCENARIO_ERROR_400,
    SCENARIO_ERROR_500,
    SCENARIO_OVERLOADED,
    SCENARIO_RATE_LIMIT_ONCE,
    SCENARIO_SLOW,
    SCENARIO_STREAM_CUT,
    SCENARIO_STREAM_ERROR_MID,
    SLOW_SECONDS,
    Event,
    Reply,
    ScenarioError,
    scenario_of,
)

__all__ = ["ProviderServer", "RecordedRequest"]

log = logging.getLogger("spendmeter")


class ProviderServer:
    """The fake provider. `start()` binds (port 0 = a free port) and serves from a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._limited_keys: set[str] = set()
        self._batches = anth.BatchStore(lambda: self.url)
        self._routes = routes(self._batches)
        self._conns: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> ProviderServer:
        if self._httpd is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"owner": self})
        httpd = _QuietServer((self.host, self.port), handler)
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(0.05,), name="spendmeter-provider-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # idle keep-alive connections would otherwise linger until their timeout
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("ProviderServer is not started; call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def providers(self) -> dict[str, str]:
        """For `init(providers=...)`: this address's endpoints as the providers whose formats they speak."""
        where = f"{self.host}:{self.port}"
        return {f"{where}/v1": "openai", where: "anthropic"}

    @property
    def gemini_base_url(self) -> str:
        """For `google-genai`: `HttpOptions(base_url=...)`, Gemini API and Vertex AI modes alike."""
        return self.url

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests, `rate-limit-once` keys and batches."""
        with self._lock:
            self._requests.clear()
            self._limited_keys.clear()
        self._batches.clear()

    # --- bookkeeping used by the handler ------------------------------------------------------------

    def _route(self, method: str, path: str) -> tuple[str, Endpoint, dict[str, str]] | None:
        for want, pattern, provider, endpoint in self._routes:
            match = pattern.fullmatch(path)
            if match and want == method:
                return provider, endpoint, match.groupdict()
        return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _first_time(self, key: str) -> bool:
        with self._lock:
            if key in self._limited_keys:
                return False
            self._limited_keys.add(key)
            return True


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):  # a client dropped a keep-alive connection: routine
            log.debug("provider-server: %s from %s", exc, client_address)
        else:
            log.warning("provider-server: error handling a request from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections close after this
    owner: ProviderServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without NODELAY, Nagle + delayed ACK add ~40 ms a reply.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.owner._lock:
            self.owner._conns.add(self.connection)

    def finish(self) -> None:
        with self.owner._lock:
            self.owner._conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass  # the client or stop() already tore the socket down

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("provider-server: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    # --- dispatch -----------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        path, query = split.path, dict(parse_qsl(split.query))
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        body: dict[str, Any] | None = None
        if raw:
            try:
                parsed = json.loads(raw)
                body = parsed if isinstance(parsed, dict) else None
            except ValueError:
                body = None
        self.owner._record(RecordedRequest(self.command, path, query, headers, body))
        self.provider = provider_for_path(path)
        self.request_id = f"req_{uuid.uuid4().hex[:24]}"

        found = self.owner._route(self.command, path)
        if found is None:
            self._error(404, f"No fake route for {self.command} {path}")
            return
        self.provider, endpoint, groups = found
        try:
            scenario = scenario_of(headers)
        except ScenarioError as exc:
            self._error(400, str(exc))
            return
        if self._fails_before_answer(scenario, headers):
            return
        if self.command == "POST" and body is None:
            self._error(400, "The request body must be a JSON object.")
            return
        try:
            reply = endpoint(body or {}, headers, **groups)
        except ScenarioError as exc:
            self._error(400, str(exc))
            return
        except Exception as exc:  # a bug here should read as a 500 in the test, not a dropped connection
            log.warning("provider-server: %s %s failed", self.command, path, exc_info=True)
            self._error(500, f"provider-server bug: {exc!r}")
            return
        if reply.events is not None:
            self._send_stream(reply)
        elif reply.jsonl:
            payload = b"".join(json.dumps(line).encode() + b"\n" for line in reply.body)
            self._send(reply.status, payload, "application/binary")
        else:
            self._send_json(reply.status, reply.body)

    def _fails_before_answer(self, scenario: str, headers: dict[str, str]) -> bool:
        """Apply the scenarios that decide before any body is written; True when already answered."""
        if scenario == SCENARIO_SLOW:
            time.sleep(SLOW_SECONDS)
        elif scenario == SCENARIO_ERROR_400:
            self._error(400, f"Fake invalid request ({scenario}).")
        elif scenario == SCENARIO_ERROR_500:
            self._error(500, f"Fake internal server error ({scenario}).")
        elif scenario == SCENARIO_OVERLOADED:
            status = 529 if self.provider == ANTHROPIC else 503
            self._error(status, "Overloaded" if status == 529 else "The engine is currently overloaded.")
        elif scenario == SCENARIO_RATE_LIMIT_ONCE and self.owner._first_time(headers.get(HEADER_KEY, "")):
            self._error(429, f"Fake rate limit ({scenario}); retry after {RETRY_AFTER_MS} ms.")
        else:
            return False
        return scenario != SCENARIO_SLOW

    # --- writing ------------------------------------------------------------------------------------

    def _send(self, status: int, payload: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-request-id" if self.provider == OPENAI else "request-id", self.request_id)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_json(self, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", extra)

    def _error(self, status: int, message: str) -> None:
        if self.provider == ANTHROPIC:
            body = anth.error_body(status, message, request_id=self.request_id)
        elif self.provider == GEMINI:
            body = gem.error_body(status, message)
        else:
            body = oai.error_body(status, message)
        extra = {}
        if status == 429 or status >= 500:
            extra = {"retry-after-ms": str(RETRY_AFTER_MS), "retry-after": "0"}
        self._send_json(status, body, extra)

    def _send_stream(self, reply: Reply) -> None:
        assert reply.events is not None and reply.plan is not None
        scenario = reply.plan.scenario
        failing = scenario in (SCENARIO_STREAM_ERROR_MID, SCENARIO_STREAM_CUT)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id" if self.provider == OPENAI else "request-id", self.request_id)
        self.end_headers()
        try:
            sent = content = 0
            for event in reply.events:
                if failing and content >= CHUNKS_BEFORE_FAILURE:
                    break
                self._write_chunk(_encode(event))
                sent += 1
                content += event.content
            if failing and scenario == SCENARIO_STREAM_CUT:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)  # no terminating chunk: the body is incomplete
                self.close_connection = True
                return
            if failing:
                if self.provider == ANTHROPIC:
                    error = anth.stream_error_event(self.request_id)
                elif self.provider == GEMINI:
                    error = Event(gem.error_body(500, "Internal error encountered."))
                elif reply.events[0].name is not None:  # the Responses API names its events
                    error = oai_resp.responses_error_event(sent)
                else:
                    error = oai.stream_error_event()
                self._write_chunk(_encode(error))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading: fine, that is its right

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


def _encode(event: Event) -> bytes:
    data = event.data if isinstance(event.data, str) else json.dumps(event.data)
    head = f"event: {event.name}\n" if event.name else ""
    return f"{head}data: {data}\n\n".encode()


def main(argv: list[str] | None = None, *, serve: Callable[[], None] | None = None) -> int:
    """`python -m spendmeter.testing.server --port 8080`: serve until interrupted."""
    parser = argparse.ArgumentParser(description="Fake OpenAI/Anthropic API for local testing.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    with ProviderServer(args.host, args.port) as srv:
        print(
            f"OpenAI base URL:    {srv.openai_base_url}\nAnthropic base URL: {srv.anthropic_base_url}",
            flush=True,
        )
        try:
            (serve or threading.Event().wait)()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
