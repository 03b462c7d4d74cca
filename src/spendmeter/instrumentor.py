"""Zero-code use: `opentelemetry-instrument python agent.py` finds this through the
`opentelemetry_instrumentor` entry point and calls `spendmeter.init()` from the environment."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]


class SpendmeterInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    def instrumentation_dependencies(self) -> Collection[str]:
        # Both SDKs are optional: whichever is installed gets instrumented, so no hard dependency here.
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        from spendmeter.runtime.lifecycle import init

        init(tracer_provider=kwargs.get("tracer_provider"), meter_provider=kwargs.get("meter_provider"))

    def _uninstrument(self, **kwargs: Any) -> None:
        from spendmeter.runtime.lifecycle import shutdown

        shutdown()
