"""What spendmeter serves: `/metrics` for Prometheus and `/api/budgets`, from its own small HTTP server or
as a WSGI app mounted in the application's server (gunicorn workers in multiprocess mode)."""

from __future__ import annotations

from spendmeter.server.http import MetricsServer, tls_context, wsgi_metrics_app
from spendmeter.server.routes import Access, before_scrape, budget_status, respond, scrape_registry

__all__ = [
    "Access",
    "MetricsServer",
    "before_scrape",
    "budget_status",
    "respond",
    "scrape_registry",
    "tls_context",
    "wsgi_metrics_app",
]
