"""gunicorn settings for a spendmeter multi-worker deployment (also shown in docs/telemetry.md)."""

from prometheus_client import multiprocess


def child_exit(server, worker):
    # Drops the dead worker's live gauges; its counters stay in the shared files, so nothing is lost or doubled.
    multiprocess.mark_process_dead(worker.pid)
