"""Sinks read finished `Call` records (priced, labelled by the pipeline) and write them somewhere: Prometheus,
OTLP metrics, spans, the ledger, budget spend. A sink imports only the record and the telemetry contract."""

from __future__ import annotations

from spendmeter.runtime.pipeline import Sink

__all__ = ["Sink"]
