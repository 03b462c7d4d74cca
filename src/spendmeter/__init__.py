"""spendmeter: who and what is spending your LLM money, and are you about to blow the budget?

```python
import spendmeter
spendmeter.init()                                   # /metrics on 127.0.0.1:9464, spans, SDKs instrumented
with spendmeter.attribute(user="alice", feature="support", agent="router"):
    client.chat.completions.create(...)
```
"""

from __future__ import annotations

from spendmeter.attribution import attribute
from spendmeter.call import Attribution, Call, Cost, Unpriced, Usage
from spendmeter.errors import BudgetExceeded, ConfigError
from spendmeter.runtime import pipeline as _pipeline
from spendmeter.runtime.lifecycle import init, shutdown
from spendmeter.runtime.pipeline import Sink

__version__ = "0.1.0"

__all__ = [
    "Attribution",
    "BudgetExceeded",
    "Call",
    "ConfigError",
    "Cost",
    "Sink",
    "Unpriced",
    "Usage",
    "__version__",
    "add_sink",
    "attribute",
    "flush",
    "init",
    "instrument",
    "remove_sink",
    "shutdown",
    "uninstrument",
]


def instrument() -> dict[str, int]:
    """Patch the installed SDKs (idempotent); calls are priced and go to the sinks added with `add_sink()`.

    `init()` does this too, with metrics, spans and budgets wired. Returns patched method counts per SDK.
    """
    from spendmeter.instrumentation import patches
    from spendmeter.runtime.lifecycle import report_sdks

    if _pipeline.current().pricer is None:
        from spendmeter.pricing import load_pricebook, pricer

        priced = pricer(load_pricebook(None))
        _pipeline.update(lambda p: p if p.pricer is not None else p.replace(pricer=priced))
    patched = patches.instrument()
    report_sdks(patched)
    return patched


def uninstrument() -> None:
    """Restore every patched SDK method."""
    from spendmeter.instrumentation import patches

    patches.uninstrument()


def flush() -> None:
    """Write out every call that has ended: metrics, spans, ledger rows and budget spend are finished on a
    background thread in batches, within about 20 ms; this finishes what is still queued, on this thread.
    Readers inside spendmeter (/metrics, the JSON API, budget checks, shutdown) already do it; call it before
    you read spans from an in-memory exporter, or at the end of a serverless handler."""
    from spendmeter.runtime import finisher

    finisher.flush()


def add_sink(sink: Sink) -> None:
    """Receive every finished `Call` (priced and labelled): `sink.on_call(call)`. Before or after `init()`,
    the sink stays until `remove_sink()`, across re-inits."""
    _pipeline.update(lambda p: p.replace(extra_sinks=(*p.extra_sinks, sink)))


def remove_sink(sink: Sink) -> None:
    _pipeline.update(lambda p: p.replace(extra_sinks=tuple(s for s in p.extra_sinks if s is not sink)))
