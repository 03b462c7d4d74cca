"""What spendmeter serves: `/metrics` for Prometheus and `/api/budgets`, from its own small HTTP server or
as a WSGI app mounted in the application's server (gunicorn workers in multiprocess mode)."""

from __future__ import annotations

from spendmeter.server.http import MetricsServer, before_scrape, budget_status, scrape_registry, wsgi_metrics_app

__all__ = ["MetricsServer", "before_scrape", "budget_status", "scrape_registry", "wsgi_metrics_app"]
