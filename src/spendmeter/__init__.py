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
from spendmeter.config import init, shutdown
from spendmeter.errors import ConfigError
from spendmeter.recorder import RECORDER as _RECORDER
from spendmeter.sinks import Sink

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
    "init",
    "instrument",
    "remove_sink",
    "shutdown",
    "uninstrument",
]


def instrument() -> dict[str, int]:
    """Patch the installed openai / anthropic SDKs (idempotent); calls are priced and go to added sinks.

    `init()` does this too, with metrics, spans and budgets wired. Returns patched method counts per SDK.
    """
    from spendmeter.config import _report_sdks
    from spendmeter.providers import _targets

    if _RECORDER.pricer is None:
        from spendmeter.pricing import load_pricebook

        _RECORDER.pricer = load_pricebook(None).price_call
    patched = _targets.instrument()
    _report_sdks(patched)
    return patched


def uninstrument() -> None:
    """Restore every patched SDK method."""
    from spendmeter.providers import _targets

    _targets.uninstrument()


def add_sink(sink: Sink) -> None:
    """Receive every finished `Call` (after pricing): `sink.on_call(call)`."""
    _RECORDER.sinks = [*_RECORDER.sinks, sink]


def remove_sink(sink: Sink) -> None:
    _RECORDER.sinks = [s for s in _RECORDER.sinks if s is not sink]


def __getattr__(name: str) -> object:
    # BudgetExceeded lives with the budgets engine; imported on first use to keep `import spendmeter` light.
    if name == "BudgetExceeded":
        from spendmeter.budgets import BudgetExceeded

        return BudgetExceeded
    raise AttributeError(name)
