"""spendmeter's routes (`/metrics`, `/api/budgets`, `/api/costs/...`, `/healthz`) as a plain ASGI app and a
WSGI app, to serve from the application's own server: FastAPI/Starlette, Django, Flask, gunicorn, uvicorn.
No framework is imported: these are the bare ASGI 3 and WSGI callables, answered by the same `respond()` as
the built-in server, so the answers are the same everywhere.

Mounting, without redirects (a `Mount("/metrics")` makes Starlette redirect `/metrics` to `/metrics/`):

    app = spendmeter.server.asgi_middleware(app)          # ASGI: our paths answered, the rest go to `app`
    app.wsgi_app = spendmeter.server.wsgi_middleware(app.wsgi_app)   # Flask; Django: wrap `application`
    Mount("/spendmeter", spendmeter.server.asgi_app)      # or under a prefix: /spendmeter/metrics, ...

Several workers (gunicorn, `uvicorn --workers N`): set `PROMETHEUS_MULTIPROC_DIR` (an empty directory)
before the workers start; `/metrics` from any worker then merges every worker's files. gunicorn tells us
when a worker dies (`child_exit` → `mark_process_dead`); uvicorn has no such hook, so before each scrape
`mark_dead_workers()` looks at the pids in the directory's file names and marks those that no longer run
(their counters stay counted: a dead worker's calls were made; only its live gauges go).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, quote

from spendmeter._contain import contain
from spendmeter.runtime.pipeline import current
from spendmeter.server.routes import Access, find_route, respond

_PID_FILE = re.compile(r"_(\d+)\.db$")
_STATUS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           421: "Misdirected Request", 500: "Internal Server Error", 503: "Service Unavailable"}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its supervisor) is dead for our purpose
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def mark_dead_workers(directory: str | None = None) -> list[int]:
    """Mark every worker whose files are in the multiprocess directory but which no longer runs; returns
    their pids. A no-op outside multiprocess mode. Safe to run from every worker at every scrape."""
    directory = directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")
    if not directory or not os.path.isdir(directory):
        return []
    from prometheus_client import multiprocess

    pids = {int(m.group(1)) for name in os.listdir(directory) if (m := _PID_FILE.search(name))}
    dead = sorted(pid for pid in pids - {os.getpid()} if not _alive(pid))
    for pid in dead:
        multiprocess.mark_process_dead(pid, directory)
    return dead


def _registry() -> Any:
    """The registry init() was given (None: the global one): what `/metrics` must show."""
    runtime = current().runtime
    return getattr(runtime, "registry", None)


def _before(path: str) -> None:
    if path == "/metrics":
        with contain("server.mark_dead_workers"):
            mark_dead_workers()


# Left to the application even in front of it: its own health check and root page win over ours.
_APPLICATION_PATHS = frozenset({"/", "/healthz"})


def serves(path: str) -> bool:
    """A path the middlewares answer themselves rather than pass to the application."""
    return path not in _APPLICATION_PATHS and find_route(path) is not None


def _local_path(path: str, root_path: str) -> str:
    """Our route for a request: the path itself, or (mounted under a prefix) what follows the prefix."""
    if serves(path):
        return path
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :] or "/"
        return rest
    return path


# -- ASGI ------------------------------------------------------------------------------------------------
class ASGIApp:
    """A plain ASGI 3 app. A class instance (not a function), so Starlette's `Route(path, asgi_app)` passes
    it the raw scope rather than wrapping it as a request handler."""

    def __init__(self, access: Access | None = None, fallback: Any = None) -> None:
        self.access = access or Access()
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan" and self.fallback is None:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind != "http" or (self.fallback is not None and not serves(scope.get("path", ""))):
            if self.fallback is None:
                raise RuntimeError(f"spendmeter's ASGI app serves HTTP only, not {kind!r}")
            await self.fallback(scope, receive, send)
            return
        raw = scope.get("raw_path")
        path = raw.decode("latin-1").split("?", 1)[0] if raw else quote(scope.get("path", "/"))
        path = _local_path(path, quote(scope.get("root_path", "")))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        method = scope.get("method", "GET")

        def answer() -> Any:
            _before(path)
            return respond(method, path, query, headers, self.access, _registry())

        # On a thread: a ledger query or a flush of the ledger queue must not stall the application's loop.
        response = await asyncio.get_running_loop().run_in_executor(None, answer)
        head = [(b"content-type", response.content_type.encode()),
                (b"content-length", str(len(response.body)).encode())]
        head += [(k.lower().encode(), v.encode()) for k, v in response.headers]
        await send({"type": "http.response.start", "status": response.status, "headers": head})
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else response.body})


asgi_app = ASGIApp()


def asgi_middleware(app: Any, access: Access | None = None) -> ASGIApp:
    """`app` with spendmeter's paths answered in front of it; every other request (and lifespan) goes to it."""
    return ASGIApp(access, fallback=app)


# -- WSGI ------------------------------------------------------------------------------------------------
class WSGIApp:
    def __init__(self, access: Access | None = None, fallback: Any = None) -> None:
        self.access = access or Access()
        self.fallback = fallback

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # PATH_INFO is decoded (as latin-1 bytes); quoted again, ids read the same as from the other servers.
        path = quote((environ.get("PATH_INFO") or "/").encode("latin-1").decode("utf-8", "replace"))
        if self.fallback is not None and not serves(path):
            return self.fallback(environ, start_response)  # type: ignore[no-any-return]
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        _before(path)
        response = respond(environ.get("REQUEST_METHOD", "GET"), path, parse_qs(environ.get("QUERY_STRING", "")),
                           headers, self.access, _registry())
        start_response(f"{response.status} {_STATUS.get(response.status, 'Error')}",
                       [("Content-Type", response.content_type), ("Content-Length", str(len(response.body))),
                        *response.headers])
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else response.body]


wsgi_app = WSGIApp()


def wsgi_middleware(app: Any, access: Access | None = None) -> WSGIApp:
    """`app` with spendmeter's paths answered in front of it."""
    return WSGIApp(access, fallback=app)


__all__ = ["ASGIApp", "WSGIApp", "asgi_app", "asgi_middleware", "mark_dead_workers", "wsgi_app", "wsgi_middleware"]
