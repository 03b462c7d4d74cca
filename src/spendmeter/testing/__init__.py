"""Test your instrumented LLM code without keys or network: a fake provider and a collecting sink.

`ProviderServer` is a local HTTP server that the real `openai` and `anthropic` SDKs talk to as if it were
the provider: JSON and server-sent events in the real shapes, token counts you choose with request headers,
and errors, rate limits, broken streams and tool calls on demand. `CollectingSink` keeps every `Call`
spendmeter finished, so a test can check what was recorded:

    import openai, spendmeter
    from spendmeter.testing import HEADER_USAGE, CollectingSink, ProviderServer

    sink = CollectingSink()
    spendmeter.add_sink(sink)
    with ProviderServer() as srv:
        # Map the local address to the providers it imitates, or its calls are labelled 127.0.0.1:PORT, unpriced.
        spendmeter.init(serve_metrics=False, providers=srv.providers)
        client = openai.OpenAI(base_url=srv.openai_base_url, api_key="test")
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                       extra_headers={HEADER_USAGE: "input=100,output=20"})
    call = sink.one()                     # exactly one call finished, or an AssertionError saying how many
    assert (call.provider, call.usage.input, call.usage.output) == ("openai", 100, 20) and call.priced

spendmeter's own integration and end-to-end tests and `spendmeter demo` use exactly this package, so what
the tests prove is what users get. It is public API: wire formats live in `openai_wire`,
`openai_responses_wire` and `anthropic_wire`, the scenario headers and their knobs in `scenarios`.
`python -m spendmeter.testing.server --port 8080` serves it from a shell.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spendmeter.testing.collect import CollectingSink, FlushingSpanExporter
    from spendmeter.testing.scenarios import (
        CHUNKS_BEFORE_FAILURE,
        DEFAULT_MAX_OUTPUT,
        HEADER_BATCH_ERRORS,
        HEADER_KEY,
        HEADER_SCENARIO,
        HEADER_TIER,
        HEADER_USAGE,
        OPENAI_MODEL_SNAPSHOTS,
        RETRY_AFTER_MS,
        SCENARIO_ERROR_400,
        SCENARIO_ERROR_500,
        SCENARIO_OK,
        SCENARIO_OVERLOADED,
        SCENARIO_RATE_LIMIT_ONCE,
        SCENARIO_SLOW,
        SCENARIO_STREAM_CUT,
        SCENARIO_STREAM_ERROR_MID,
        SCENARIO_TOOL_CALL,
        SCENARIOS,
        SLOW_SECONDS,
        USAGE_KEYS,
    )
    from spendmeter.testing.server import ProviderServer, RecordedRequest

__all__ = [
    "CHUNKS_BEFORE_FAILURE",
    "DEFAULT_MAX_OUTPUT",
    "HEADER_BATCH_ERRORS",
    "HEADER_KEY",
    "HEADER_SCENARIO",
    "HEADER_TIER",
    "HEADER_USAGE",
    "OPENAI_MODEL_SNAPSHOTS",
    "RETRY_AFTER_MS",
    "SCENARIOS",
    "SCENARIO_ERROR_400",
    "SCENARIO_ERROR_500",
    "SCENARIO_OK",
    "SCENARIO_OVERLOADED",
    "SCENARIO_RATE_LIMIT_ONCE",
    "SCENARIO_SLOW",
    "SCENARIO_STREAM_CUT",
    "SCENARIO_STREAM_ERROR_MID",
    "SCENARIO_TOOL_CALL",
    "SLOW_SECONDS",
    "USAGE_KEYS",
    "CollectingSink",
    "FlushingSpanExporter",
    "ProviderServer",
    "RecordedRequest",
]

# Names are resolved on first access (PEP 562) rather than imported here: `python -m spendmeter.testing.server`
# imports this package first, and an eager `from .server import ...` would put that module in sys.modules
# before runpy executes it as __main__ (runpy then warns of unpredictable behaviour). Not listed: scenarios.
_SUBMODULE = {
    "CollectingSink": "collect",
    "FlushingSpanExporter": "collect",
    "ProviderServer": "server",
    "RecordedRequest": "server",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_SUBMODULE.get(name, 'scenarios')}")
    value = getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
