"""A tiny Alertmanager webhook receiver for the demo stack: one log line per alert it is sent.

Standard library only, so the compose stack runs it as a plain script in a bare Python image:

    python webhook.py --host 0.0.0.0 --port 9095      # POST /alerts with Alertmanager's webhook JSON

Each line reads like
    [firing] LLMBudgetWarning budget=daily-global severity=warning: Global daily budget at 82% of $50.00
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("spendmeter")

PATH = "/alerts"
# Labels worth a glance in a log line, in this order; the rest stay in Alertmanager.
SHOWN_LABELS = ("budget", "scope", "key", "period", "severity", "user", "feature", "model", "provider")
MAX_BODY = 1 << 20  # Alertmanager sends at most a few hundred KiB even for big groups


def format_alert(alert: Mapping[str, Any], group_status: str = "") -> str:
    """One human line for one alert of an Alertmanager webhook payload."""
    labels = alert.get("labels") or {}
    annotations = alert.get("annotations") or {}
    status = alert.get("status") or group_status or "unknown"
    shown = " ".join(f"{k}={labels[k]}" for k in SHOWN_LABELS if labels.get(k))
    text = annotations.get("summary") or annotations.get("description") or ""
    line = f"[{status}] {labels.get('alertname', '?')}"
    if shown:
        line += f" {shown}"
    if text:
        line += f": {text}"
    return line


def format_payload(payload: Mapping[str, Any]) -> list[str]:
    """Lines for every alert in one notification (Alertmanager groups several alerts per POST)."""
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise ValueError("payload has no 'alerts' list: is this an Alertmanager webhook notification?")
    return [format_alert(a, str(payload.get("status", ""))) for a in alerts if isinstance(a, Mapping)]


def make_handler(emit: Callable[[str], None]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.rstrip("/") != PATH:
                self._reply(HTTPStatus.NOT_FOUND, f"POST alerts to {PATH}\n")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too large\n")
                return
            try:
                lines = format_payload(json.loads(self.rfile.read(length) or b"null"))
            except (ValueError, AttributeError) as exc:  # bad JSON, or JSON that is not a notification
                self._reply(HTTPStatus.BAD_REQUEST, f"{exc}\n")
                return
            for line in lines:
                emit(line)
            self._reply(HTTPStatus.OK, "ok\n")

        def do_GET(self) -> None:  # a health check for compose and for people poking at the port
            self._reply(HTTPStatus.OK, f"spendmeter demo webhook: POST notifications to {PATH}\n")

        def _reply(self, status: HTTPStatus, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("webhook %s " + format, self.address_string(), *args)

    return Handler


def _print(line: str) -> None:
    print(line, flush=True)  # flushed: `docker compose logs` should show each alert as it arrives


def serve(host: str, port: int, emit: Callable[[str], None] = _print) -> ThreadingHTTPServer:
    """A server bound to (host, port), not yet serving: call serve_forever() (port 0 = any free port)."""
    return ThreadingHTTPServer((host, port), make_handler(emit))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print Alertmanager notifications, one line per alert.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9095)
    args = parser.parse_args(argv)
    server = serve(args.host, args.port)
    _print(f"spendmeter demo webhook listening on http://{args.host}:{server.server_address[1]}{PATH}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
