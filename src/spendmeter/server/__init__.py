"""What spendmeter serves: `/metrics` for Prometheus, `/api/budgets` and the cost API (`/api/costs/...`), from
its own small HTTP server or as an ASGI/WSGI app mounted in the application's server (several workers in
multiprocess mode)."""

from __future__ import annotations

from spendmeter.server import api as _api  # noqa: F401  (importing it registers the /api/costs routes)
from spendmeter.server import page as _page  # noqa: F401  (importing it registers the /costs page)
from spendmeter.server import tags_api as _tags_api  # noqa: F401  (registers /api/costs/by-tag and /tags)
from spendmeter.server.apps import asgi_app, asgi_middleware, mark_dead_workers, wsgi_app, wsgi_middleware
from spendmeter.server.http import MetricsServer, tls_context, wsgi_metrics_app
from spendmeter.server.routes import Access, before_scrape, budget_status, respond, scrape_registry

__all__ = [
    "Access",
    "MetricsServer",
    "asgi_app",
    "asgi_middleware",
    "before_scrape",
    "budget_status",
    "mark_dead_workers",
    "respond",
    "scrape_registry",
    "tls_context",
    "wsgi_app",
    "wsgi_metrics_app",
    "wsgi_middleware",
]
