"""spendmeter against its peer libraries, in one run, as ratios against the bare SDK.

    python benchmarks/peers.py [--calls 150] [--chunk 25] [--rounds 7] [--tools spendmeter,openllmetry,...]
        [--modes "openai sync,anthropic stream"] [--python openllmetry=/tmp/bench-openllmetry/bin/python ...]
        [--json out.json] [--keep-env]

Tools: spendmeter (default settings: spans, Prometheus metrics in a private registry, pricing), spendmeter-inline
(the same, finishing each call on the caller's thread, where this spendmeter has that option), OpenLLMetry
(opentelemetry-instrumentation-openai / -anthropic), OpenTelemetry's GenAI instrumentation
(opentelemetry-instrumentation-genai-openai / -anthropic), the older opentelemetry-instrumentation-openai-v2, and
OpenLIT; and span-floor, a reference rather than a peer (never "the lightest peer"): one bare SDK span started
and made current around each SDK request, nothing read, no metrics: the least a tool pays on the caller's thread
when it starts its span there.
Each runs in its own worker process, on the interpreter given with --python (default: this one), so their
patches never stack and their pins can differ; a tool whose package is missing there is reported as not
installed. The workers stay up and are driven round-robin (the order rotates every round), one tool and mode
at a time, so drift of the machine falls on every tool alike; within a worker, bare and instrumented calls
alternate every --chunk calls (which side goes first alternates by round), toggled with the tool's own
uninstrument/instrument where that is checked to restore every SDK method it wrapped, otherwise (OpenLIT has
no uninstrument; an uninstrument that leaves wrappers behind would stack them) by putting back the original SDK
methods that the wrappers hold as `__wrapped__`; the output says which. The instrumented side must export
spans and the bare side none, or the row is marked VOID.

Same conditions for every tool: the real openai / anthropic SDKs on a canned in-memory transport (no network,
`_canned.py`); spans to an SDK TracerProvider with a counting no-op exporter behind a SimpleSpanProcessor (so
ending a span is paid in the call); OTel metrics, for the tools that emit them, to an SDK MeterProvider whose
in-memory reader is only read once at the end; log records (GenAI events) to an SDK LoggerProvider with a
counting no-op exporter. These are the global providers (OpenLIT only reuses global ones) and the peers'
`instrument()` arguments; spendmeter is given the TracerProvider and a private Prometheus registry, and no
global MeterProvider is set in its workers (it would add OTel metrics on top of Prometheus). The Anthropic
SDK's own span per call is turned off on the client (`open_telemetry={"traces": False}`) on both sides, so the
spans counted are the tool's. Content capture is each tool's default, read from the tool itself and checked in
what it exported; the TRACELOOP_/OTEL_/OPENLIT_/SPENDMETER_ variables are removed from the workers'
environment (--keep-env keeps them).

Per tool x mode: medians over the rounds of the CPU time of the calling thread per call (time.thread_time_ns),
of the wall time per call, and of the process CPU time per call (time.process_time_ns: every thread, so work
a tool moves to a background thread is counted; spendmeter's queue is flushed at the end of each chunk and
that flush is inside the process time but not the caller's thread time or wall time). Added µs and ratios are
medians of the per-round paired differences / ratios against the bare side of the same round.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.metadata
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = ("openai sync", "openai async", "openai stream", "anthropic sync", "anthropic stream", "anthropic stream()")
METRICS = ("thread", "wall", "process")
METRIC_TITLES = {
    "thread": "caller-thread CPU (time.thread_time_ns)",
    "wall": "wall time of the calls (time.perf_counter_ns)",
    "process": "process CPU, all threads, incl. the end-of-chunk flush (time.process_time_ns)",
}
FLOOR = "span-floor"  # a reference, not a peer: _setup_span_floor
# tool -> distributions it needs (the first group instruments openai, the second anthropic) and the extra
TOOLS: dict[str, dict[str, Any]] = {
    "spendmeter": {"openai": ["spendmeter"], "anthropic": ["spendmeter"], "extra": None},
    "spendmeter-inline": {"openai": ["spendmeter"], "anthropic": ["spendmeter"], "extra": None},
    "openllmetry": {"openai": ["opentelemetry-instrumentation-openai"],
                    "anthropic": ["opentelemetry-instrumentation-anthropic"], "extra": "bench-openllmetry"},
    "otel-genai": {"openai": ["opentelemetry-instrumentation-genai-openai"],
                   "anthropic": ["opentelemetry-instrumentation-genai-anthropic"], "extra": "bench-otel-genai"},
    "otel-v2": {"openai": ["opentelemetry-instrumentation-openai-v2"], "anthropic": None, "extra": "bench-otel-v2"},
    "openlit": {"openai": ["openlit"], "anthropic": ["openlit"], "extra": "bench-openlit"},
    FLOOR: {"openai": [], "anthropic": [], "extra": None},
}
ANCHORS = ("openllmetry", "otel-genai", "otel-v2", "openlit")
STRIPPED_ENV_PREFIXES = ("TRACELOOP_", "OTEL_", "OPENLIT_", "SPENDMETER_")
SDK_DISTS = ("openai", "anthropic", "httpx2", "opentelemetry-api", "opentelemetry-sdk", "wrapt")
# OpenLIT fetches its price list from the network unless given a file: these are the list prices of the two
# models the canned calls use, in OpenLIT's format (USD per 1k tokens), so it prices as it would in production.
OPENLIT_PRICES = {
    "chat": {
        "gpt-4o-mini": {"promptPrice": 0.00015, "completionPrice": 0.0006, "cacheReadPrice": 0.000075},
        "claude-sonnet-4-5": {"promptPrice": 0.003, "completionPrice": 0.015, "cacheReadPrice": 0.0003,
                              "cacheCreationPrice": 0.00375},
    }
}


# ------------------------------------------------------------------------------------------------- the worker


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


class _Telemetry:
    """The providers every tool gets, with counters on the exporters."""

    def __init__(self, global_meter_provider: bool) -> None:
        from opentelemetry import _logs, metrics, trace
        from opentelemetry.sdk import _logs as sdk_logs
        from opentelemetry.sdk._logs import export as log_export
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

        tel = self
        self.spans = 0
        self.logs = 0
        self.keep = False
        self.kept_spans: list[Any] = []
        self.kept_logs: list[Any] = []

        class CountingSpanExporter(SpanExporter):
            def export(self, spans):  # type: ignore[no-untyped-def]
                tel.spans += len(spans)
                if tel.keep:
                    tel.kept_spans.extend(spans)
                return SpanExportResult.SUCCESS

        log_base = getattr(log_export, "LogRecordExporter", None) or log_export.LogExporter
        log_ok = getattr(log_export, "LogRecordExportResult", None) or log_export.LogExportResult

        class CountingLogExporter(log_base):  # type: ignore[misc, valid-type]
            def export(self, batch):  # type: ignore[no-untyped-def]
                tel.logs += len(batch)
                if tel.keep:
                    tel.kept_logs.extend(batch)
                return log_ok.SUCCESS

            def force_flush(self, timeout_millis: int = 30000) -> bool:
                return True

            def shutdown(self):  # type: ignore[no-untyped-def]
                return None

        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(CountingSpanExporter()))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.logger_provider = sdk_logs.LoggerProvider()
        self.logger_provider.add_log_record_processor(log_export.SimpleLogRecordProcessor(CountingLogExporter()))
        trace.set_tracer_provider(self.tracer_provider)
        _logs.set_logger_provider(self.logger_provider)
        if global_meter_provider:
            metrics.set_meter_provider(self.meter_provider)

    def content_seen(self, text: str) -> bool:
        """Whether `text` (the prompt) appears in anything exported since `keep` was set."""
        values: list[Any] = []
        for span in self.kept_spans:
            values.extend((span.attributes or {}).values())
            for event in span.events:
                values.extend((event.attributes or {}).values())
        for record in self.kept_logs:
            rec = getattr(record, "log_record", record)
            values.append(getattr(rec, "body", None))
            values.extend((getattr(rec, "attributes", None) or {}).values())
        return any(text in (v if isinstance(v, str) else repr(v)) for v in values if v is not None)

    def metric_names(self) -> list[str]:
        data = self.reader.get_metrics_data()
        names = set()
        for rm in getattr(data, "resource_metrics", None) or []:
            for sm in rm.scope_metrics:
                names.update(m.name for m in sm.metrics)
        return sorted(names)


class _Tool:
    def __init__(self, on: Callable[[], Any], off: Callable[[], Any], info: dict[str, Any],
                 flush: Callable[[], Any] = lambda: None, finish: Callable[[], dict[str, Any]] = dict) -> None:
        self.on, self.off, self.info, self.flush, self.finish = on, off, info, flush, finish


def _setup_spendmeter(tel: _Telemetry, covers: dict[str, bool], inline: bool) -> _Tool:
    from prometheus_client import CollectorRegistry

    import spendmeter

    registry = CollectorRegistry()
    options: dict[str, Any] = {"finish": "inline"} if inline else {}
    try:
        rt = spendmeter.init(registry=registry, serve_metrics=False, tracer_provider=tel.tracer_provider, **options)
    except TypeError as e:
        if inline:
            raise _NotAvailable(f"this spendmeter has no finish='inline' option ({e})") from e
        raise
    flush = getattr(spendmeter, "flush", None)
    settings = rt.settings
    rev = _git_revision()

    def finish() -> dict[str, Any]:
        families = [m.name for m in registry.collect()]
        spendmeter.shutdown()
        return {"metrics": f"Prometheus (private registry): {len(families)} families"}

    return _Tool(
        on=spendmeter.instrument, off=spendmeter.uninstrument, flush=flush or (lambda: None), finish=finish,
        info={
            "version": f"spendmeter {spendmeter.__version__} ({rev})",
            "content": f"capture_content={settings.capture_content} (SPENDMETER_CAPTURE_CONTENT / "
                       f"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT unset)",
            "toggle": "spendmeter.uninstrument() / spendmeter.instrument()",
            "finish": getattr(settings, "finish", "inline (no finisher in this version)")
                      + ("; spendmeter.flush() at the end of each chunk" if flush else ""),
            "pricing": "on (bundled price book)",
        },
    )


def _setup_instrumentors(tel: _Telemetry, instrumentors: list[Any], info: dict[str, Any]) -> _Tool:
    """Toggle with the instrumentors' own uninstrument()/instrument(), once checked that uninstrument() puts
    back every SDK method that instrument() wrapped; where it does not (wrappers would stack on every toggle),
    instrument once and swap the wrappers with the originals they hold as `__wrapped__`, and say so."""
    kwargs = {"tracer_provider": tel.tracer_provider, "meter_provider": tel.meter_provider,
              "logger_provider": tel.logger_provider}

    def on() -> None:
        for inst in instrumentors:
            inst.instrument(**kwargs)

    def off() -> None:
        for inst in instrumentors:
            inst.uninstrument()

    names = ", ".join(f"{type(i).__module__}.{type(i).__name__}" for i in instrumentors)
    before = _sdk_attributes()
    on()
    wrappers = _wrappers(before, _sdk_attributes())
    off()
    left = sorted(_name(o, a) for o, a, original, _ in wrappers if vars(o).get(a) is not original)
    if not left:
        info.setdefault("toggle", f"{names}: .uninstrument() / .instrument() ({len(wrappers)} SDK methods wrapped)")
        return _Tool(on=on, off=off, info=info)
    for owner, attr, original, _ in wrappers:
        setattr(owner, attr, original)
    on()
    swap = _Swap(_wrappers(before, _sdk_attributes()))
    info["toggle"] = (f"{names}: .uninstrument() left {len(left)} of its {len(wrappers)} wrappers in place "
                      f"({', '.join(left[:4])}{', ...' if len(left) > 4 else ''}), so wrappers would stack; "
                      f"instrumented once, the bare side puts back the original methods held as __wrapped__")
    return _Tool(on=swap.on, off=swap.off, info=info)


def _setup_openllmetry(tel: _Telemetry, covers: dict[str, bool]) -> _Tool:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.instrumentation.openai.utils import should_send_prompts

    insts: list[Any] = [OpenAIInstrumentor()]
    content = [f"openai: should_send_prompts()={should_send_prompts()}"]
    if covers["anthropic"]:
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
        from opentelemetry.instrumentation.anthropic.utils import should_send_prompts as anthropic_prompts

        insts.append(AnthropicInstrumentor())
        content.append(f"anthropic: should_send_prompts()={bool(anthropic_prompts())}")
    env = os.environ.get("TRACELOOP_TRACE_CONTENT", "unset")
    return _setup_instrumentors(tel, insts, {
        "content": f"TRACELOOP_TRACE_CONTENT={env} -> " + ", ".join(content),
        "pricing": "none",
    })


def _setup_otel_genai(tel: _Telemetry, covers: dict[str, bool]) -> _Tool:
    from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
    from opentelemetry.util.genai.utils import get_content_capturing_mode

    insts: list[Any] = [OpenAIInstrumentor()]
    if covers["anthropic"]:
        from opentelemetry.instrumentation.genai.anthropic import AnthropicInstrumentor

        insts.append(AnthropicInstrumentor())
    env = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "unset")
    return _setup_instrumentors(tel, insts, {
        "content": f"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT={env} -> "
                   f"get_content_capturing_mode()={get_content_capturing_mode().name}",
        "pricing": "none",
    })


def _setup_otel_v2(tel: _Telemetry, covers: dict[str, bool]) -> _Tool:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.instrumentation.openai_v2.utils import is_content_enabled

    env = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "unset")
    try:  # the instrumentor takes util-genai's path when this is true (util-genai >= 1.0 always says true)
        from opentelemetry.util.genai.utils import get_content_capturing_mode, is_experimental_mode

        if is_experimental_mode():
            content = (f"get_content_capturing_mode()={get_content_capturing_mode().name} (latest semantic "
                       f"conventions through opentelemetry-util-genai, its is_experimental_mode() is true)")
        else:
            content = f"is_content_enabled()={is_content_enabled()} (legacy semantic conventions)"
    except ImportError:
        content = f"is_content_enabled()={is_content_enabled()} (legacy semantic conventions)"
    return _setup_instrumentors(tel, [OpenAIInstrumentor()], {
        "content": f"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT={env} -> {content}",
        "pricing": "none",
    })


def _is_class(value: Any) -> bool:
    return isinstance(type(value), type) and issubclass(type(value), type)  # never touches a lazy proxy


def _wrapped_of(value: Any) -> Any:
    """What a wrapper (wrapt's, or a functools.wraps function) wraps; None for anything else. Looks only at
    the type and the instance dict, so the SDKs' lazy module proxies are never loaded."""
    kind = type(value)
    if kind in (classmethod, staticmethod):  # they have __wrapped__ too (Python 3.10+)
        return None
    if any("__wrapped__" in vars(k) for k in kind.__mro__ if k is not object):
        return value.__wrapped__
    if kind.__name__ == "function":
        return vars(value).get("__wrapped__")
    return None


def _sdk_attributes() -> dict[tuple[int, str], tuple[Any, str, Any]]:
    """Every attribute of the openai/anthropic modules and of the classes they define."""
    snap: dict[tuple[int, str], tuple[Any, str, Any]] = {}
    prefixes = ("openai", "anthropic")
    for name, mod in list(sys.modules.items()):
        if mod is None or not any(name == p or name.startswith(p + ".") for p in prefixes):
            continue
        for attr, value in list(vars(mod).items()):
            snap[(id(mod), attr)] = (mod, attr, value)
            if _is_class(value) and (vars(value).get("__module__") or "").split(".")[0] in prefixes:
                for key, member in list(vars(value).items()):
                    snap[(id(value), key)] = (value, key, member)
    return snap


def _wrappers(before: dict[tuple[int, str], tuple[Any, str, Any]],
              after: dict[tuple[int, str], tuple[Any, str, Any]]) -> list[tuple[Any, str, Any, Any]]:
    """(owner, attribute, original, wrapper) for each SDK attribute replaced by a wrapper (it has __wrapped__)."""
    out = []
    owners = {id(o) for o, _, _ in before.values()}
    for key, (owner, attr, value) in after.items():
        old = before.get(key)
        if (old is not None and old[2] is value) or id(owner) not in owners:
            continue  # unchanged, or on a class made since (pydantic makes generic subclasses on the fly)
        original = _wrapped_of(value)
        if original is None:
            continue  # not a wrapper (a lazily imported submodule, a cache)
        out.append((owner, attr, old[2] if old is not None else original, value))
    return out


def _name(owner: Any, attr: str) -> str:
    return f"{getattr(owner, '__qualname__', None) or owner.__name__}.{attr}"


class _Swap:
    """Instrumented: the wrappers in place; bare: the SDK's original methods."""

    def __init__(self, wrappers: list[tuple[Any, str, Any, Any]]) -> None:
        self.wrappers = wrappers

    def on(self) -> None:
        for owner, attr, _, wrapper in self.wrappers:
            setattr(owner, attr, wrapper)

    def off(self) -> None:
        for owner, attr, original, _ in self.wrappers:
            setattr(owner, attr, original)


def _setup_openlit(tel: _Telemetry, covers: dict[str, bool]) -> _Tool:
    import openlit
    from openlit._config import OpenlitConfig

    prices = os.path.join(tempfile.mkdtemp(prefix="peers-openlit-"), "pricing.json")
    with open(prices, "w") as f:
        json.dump(OPENLIT_PRICES, f)
    before = _sdk_attributes()
    openlit.init(pricing_json=prices)  # everything else at its default
    swap = _Swap(_wrappers(before, _sdk_attributes()))
    if not swap.wrappers:
        raise RuntimeError("openlit.init() wrapped no openai/anthropic method")

    default = inspect.signature(openlit.init).parameters["capture_message_content"].default
    names = sorted({_name(o, a) for o, a, _, _ in swap.wrappers})
    return _Tool(
        on=swap.on, off=swap.off,
        info={
            "content": f"openlit.init(capture_message_content={default}) default -> "
                       f"OpenlitConfig.capture_message_content={OpenlitConfig.capture_message_content}",
            "toggle": f"no uninstrument in OpenLIT: its {len(names)} wrappers are swapped with the original SDK "
                      f"methods they hold as __wrapped__ ({', '.join(names[:6])}{', ...' if len(names) > 6 else ''})",
            "pricing": "on (local pricing_json with the two models' list prices)",
        },
    )


def _setup_span_floor(tel: _Telemetry, covers: dict[str, bool]) -> _Tool:
    """A reference, not a peer: the least a tool pays on the caller's thread when it starts its span there.
    One SDK span per request, started and made current in the SDK clients' `request()` before anything is
    sent and ended when it returns (for a stream: when the SDK hands the stream back, before the first chunk);
    no attribute, nothing read from the request or the response, no metrics, no pricing."""
    import anthropic._base_client as anthropic_base
    import openai._base_client as openai_base
    import wrapt
    from opentelemetry.trace import SpanKind

    tracer = tel.tracer_provider.get_tracer("span-floor")

    def around(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        with tracer.start_as_current_span("chat", kind=SpanKind.CLIENT):
            return wrapped(*args, **kwargs)

    async def around_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        with tracer.start_as_current_span("chat", kind=SpanKind.CLIENT):
            return await wrapped(*args, **kwargs)

    targets = [(openai_base.SyncAPIClient, around), (openai_base.AsyncAPIClient, around_async),
               (anthropic_base.SyncAPIClient, around), (anthropic_base.AsyncAPIClient, around_async)]
    swap = _Swap([(cls, "request", vars(cls)["request"], wrapt.FunctionWrapper(vars(cls)["request"], hook))
                  for cls, hook in targets])
    return _Tool(on=swap.on, off=swap.off, info={
        "version": f"a reference floor: one bare span per request (opentelemetry-sdk {_version('opentelemetry-sdk')})",
        "content": "none (nothing is read)",
        "toggle": "wrapt wrappers on openai/anthropic SyncAPIClient.request and AsyncAPIClient.request, swapped "
                  "with the originals",
        "pricing": "none",
    })


class _NotAvailable(Exception):
    pass


SETUPS: dict[str, Callable[..., _Tool]] = {
    "spendmeter": lambda tel, covers: _setup_spendmeter(tel, covers, inline=False),
    "spendmeter-inline": lambda tel, covers: _setup_spendmeter(tel, covers, inline=True),
    "openllmetry": _setup_openllmetry,
    "otel-genai": _setup_otel_genai,
    "otel-v2": _setup_otel_v2,
    "openlit": _setup_openlit,
    FLOOR: _setup_span_floor,
}


_NOTES: dict[str, str] = {}


def _calls() -> dict[str, tuple[Callable[[], Any], bool]]:
    """mode -> (call, is_async)."""
    import anthropic
    import openai
    from _canned import MSG, handler, http_library

    ohttp, ahttp = http_library(openai), http_library(anthropic)
    base = "https://api.openai.com/v1"
    oai = openai.OpenAI(api_key="sk", base_url=base, max_retries=0,
                        http_client=ohttp.Client(transport=ohttp.MockTransport(handler(ohttp))))
    aoai = openai.AsyncOpenAI(api_key="sk", base_url=base, max_retries=0,
                              http_client=ohttp.AsyncClient(transport=ohttp.MockTransport(handler(ohttp))))
    ant_options: dict[str, Any] = {"api_key": "sk", "max_retries": 0,
                                   "http_client": ahttp.Client(transport=ahttp.MockTransport(handler(ahttp)))}
    try:  # anthropic 2.x makes a span of its own per call: off, so that both sides count only the tool's spans
        ant = anthropic.Anthropic(**ant_options, open_telemetry={"traces": False})
        _NOTES["anthropic SDK spans"] = 'off (Anthropic(open_telemetry={"traces": False}))'
    except TypeError:  # an SDK without tracing of its own
        ant = anthropic.Anthropic(**ant_options)
        _NOTES["anthropic SDK spans"] = "none (this SDK has no tracing of its own)"

    def anthropic_helper() -> Any:
        with ant.messages.stream(model="claude-sonnet-4-5", max_tokens=200, messages=MSG) as stream:
            return stream.get_final_message()

    return {
        "openai sync": (lambda: oai.chat.completions.create(model="gpt-4o-mini", messages=MSG), False),
        "openai async": (lambda: aoai.chat.completions.create(model="gpt-4o-mini", messages=MSG), True),
        "openai stream": (lambda: list(oai.chat.completions.create(
            model="gpt-4o-mini", messages=MSG, stream=True, stream_options={"include_usage": True})), False),
        "anthropic sync": (lambda: ant.messages.create(model="claude-sonnet-4-5", max_tokens=200, messages=MSG),
                           False),
        "anthropic stream": (lambda: list(ant.messages.create(
            model="claude-sonnet-4-5", max_tokens=200, messages=MSG, stream=True)), False),
        "anthropic stream()": (anthropic_helper, False),
    }


class _Worker:
    def __init__(self, name: str) -> None:
        import asyncio

        self.name = name
        self.loop = asyncio.new_event_loop()
        spec = TOOLS[name]
        missing = [d for d in spec["openai"] if _version(d) is None]
        missing += [d for d in ("openai", "anthropic") if _version(d) is None]
        if missing:
            raise _NotAvailable("not installed: " + ", ".join(sorted(set(missing))))
        self.covers = {"openai": True,
                       "anthropic": spec["anthropic"] is not None and all(_version(d) for d in spec["anthropic"])}
        self.tel = _Telemetry(global_meter_provider=not name.startswith("spendmeter"))
        self.calls = _calls()
        for fn, is_async in self.calls.values():  # the SDKs import their resources lazily: load them first,
            result = fn()                         # so that the wrappers a tool installs are seen as replacing them
            if is_async:
                self.loop.run_until_complete(result)
        self.tool = SETUPS[name](self.tel, self.covers)
        self.tool.off()
        dists = sorted({d for key in ("openai", "anthropic") for d in (spec[key] or []) if _version(d)})
        self.info: dict[str, Any] = {
            "python": f"{platform.python_version()} ({sys.executable})",
            "sdks": {d: _version(d) for d in SDK_DISTS},
            "packages": {d: _version(d) for d in dists},
            **self.tool.info,
            **_NOTES,
        }
        if spec["anthropic"] is None:
            self.info["anthropic"] = "not instrumented by this tool"
        elif not self.covers["anthropic"]:
            self.info["anthropic"] = "not installed: " + ", ".join(spec["anthropic"])

    def supported(self, mode: str) -> bool:
        return self.covers[mode.split()[0]]

    def block(self, mode: str, n: int) -> dict[str, float]:
        fn, is_async = self.calls[mode]
        tel = self.tel
        gc.collect()
        spans, logs = tel.spans, tel.logs
        if is_async:
            async def run() -> tuple[int, int, int, int, int]:
                w0, c0, p0 = time.perf_counter_ns(), time.thread_time_ns(), time.process_time_ns()
                for _ in range(n):
                    await fn()
                return w0, c0, p0, time.thread_time_ns(), time.perf_counter_ns()

            w0, c0, p0, c1, w1 = self.loop.run_until_complete(run())
        else:
            w0, c0, p0 = time.perf_counter_ns(), time.thread_time_ns(), time.process_time_ns()
            for _ in range(n):
                fn()
            c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
        self.tool.flush()
        p1 = time.process_time_ns()
        return {"thread": (c1 - c0) / n / 1000, "wall": (w1 - w0) / n / 1000, "process": (p1 - p0) / n / 1000,
                "spans": (tel.spans - spans) / n, "logs": (tel.logs - logs) / n}

    def prepare(self, modes: list[str], warmup: int) -> dict[str, Any]:
        """Warm each mode both ways; check the toggle and what one instrumented call exports."""
        from _canned import PROMPT_TEXT

        checks: dict[str, Any] = {}
        for mode in modes:
            if not self.supported(mode):
                continue
            self.tool.off()
            bare = self.block(mode, warmup)
            self.tool.on()
            inst = self.block(mode, warmup)
            tel = self.tel
            tel.keep, tel.kept_spans, tel.kept_logs = True, [], []
            self.block(mode, 1)
            tel.keep = False
            self.tool.off()
            checks[mode] = {"bare_spans": bare["spans"], "spans": inst["spans"], "logs": inst["logs"],
                            "content_seen": tel.content_seen(PROMPT_TEXT),
                            "span_names": sorted({s.name for s in tel.kept_spans})}
        gc.collect()
        gc.freeze()  # what setup made is never collected again: the collection before each chunk takes µs, not 0.2 s
        return checks

    def run(self, mode: str, n: int, chunk: int, bare_first: bool) -> dict[str, Any]:
        """`n` calls each side, in alternating chunks (bare, instrumented, bare, ...), so that drift within
        the round falls on both sides; per-call figures of each side over all its chunks."""
        totals = {side: dict.fromkeys(("thread", "wall", "process", "spans", "logs"), 0.0) for side in ("bare", "inst")}
        done = 0
        sides = ("bare", "inst") if bare_first else ("inst", "bare")
        while done < n:
            k = min(chunk, n - done)
            for side in sides:
                (self.tool.off if side == "bare" else self.tool.on)()
                for key, value in self.block(mode, k).items():
                    totals[side][key] += value * k
            done += k
        self.tool.off()
        return {side: {key: v / n for key, v in t.items()} for side, t in totals.items()}

    def finish(self) -> dict[str, Any]:
        out = {"otel_metrics": self.tel.metric_names()}
        out.update(self.tool.finish())
        return out


def worker_main(name: str) -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever a tool prints goes to the worker's log, not into the protocol
    sys.stdout = sys.stderr

    def send(obj: dict[str, Any]) -> None:
        proto.write(json.dumps(obj) + "\n")

    try:
        worker = _Worker(name)
    except _NotAvailable as e:
        send({"status": "n/a", "reason": str(e)})
        return
    except Exception as e:
        import traceback

        traceback.print_exc()
        send({"status": "error", "reason": f"{type(e).__name__}: {e}"})
        return
    send({"status": "ready", "info": worker.info, "covers": worker.covers})
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd["cmd"] == "prepare":
                send({"checks": worker.prepare(cmd["modes"], cmd["warmup"])})
            elif cmd["cmd"] == "run":
                send(worker.run(cmd["mode"], cmd["calls"], cmd["chunk"], cmd["bare_first"]))
            elif cmd["cmd"] == "finish":
                send(worker.finish())
                return
        except Exception as e:
            import traceback

            traceback.print_exc()
            send({"error": f"{type(e).__name__}: {e}"})


# ------------------------------------------------------------------------------------------------- the driver


def _git_revision() -> str:
    try:
        rev = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--", "../src"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return f"git {rev}{' + uncommitted changes in src/' if dirty else ''}" if rev else "not a git checkout"
    except (OSError, subprocess.SubprocessError):
        return "git unknown"


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "loadavg_start": load}


class _Peer:
    def __init__(self, name: str, python: str, env: dict[str, str], logdir: str) -> None:
        self.name, self.python = name, python
        self.log = os.path.join(logdir, f"{name}.log")
        self.status, self.reason, self.info, self.covers = "error", "", {}, {}
        self.checks: dict[str, Any] = {}
        self.results: dict[str, list[dict[str, Any]]] = {}
        self.end: dict[str, Any] = {}
        try:
            self.proc: subprocess.Popen[str] | None = subprocess.Popen(
                [python, os.path.abspath(__file__), "--worker", name], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=open(self.log, "w"), text=True, env=env, cwd=HERE, bufsize=1)
        except OSError as e:
            self.proc, self.status, self.reason = None, "n/a", f"cannot start {python}: {e}"
            return
        hello = self.receive()
        self.status = hello.get("status", "error")
        self.reason = hello.get("reason", "")
        self.info, self.covers = hello.get("info", {}), hello.get("covers", {})
        if self.status != "ready":
            self.close()

    def receive(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            rc, self.proc = self.proc.poll(), None
            return {"status": "error", "error": f"worker exited (rc={rc}); see {self.log}",
                    "reason": f"worker exited; see {self.log}"}
        return json.loads(line)

    def ask(self, **cmd: Any) -> dict[str, Any]:
        if self.proc is None or self.proc.stdin is None:
            return {"error": "worker not running"}
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        except OSError as e:  # the worker died
            self.proc = None
            return {"error": f"worker gone ({e}); see {self.log}"}
        return self.receive()

    def close(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # type: ignore[union-attr]
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


def _summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"rounds": len(rounds)}
    for m in METRICS:
        bare = [r["bare"][m] for r in rounds]
        inst = [r["inst"][m] for r in rounds]
        out[m] = {"bare_us": round(statistics.median(bare), 1), "instrumented_us": round(statistics.median(inst), 1),
                  "added_us": round(statistics.median(i - b for b, i in zip(bare, inst, strict=True)), 1),
                  "ratio": round(statistics.median(i / b for b, i in zip(bare, inst, strict=True)), 3)}
    out["spans_per_call"] = round(statistics.median(r["inst"]["spans"] for r in rounds), 2)
    out["logs_per_call"] = round(statistics.median(r["inst"]["logs"] for r in rounds), 2)
    out["bare_spans_per_call"] = round(max(r["bare"]["spans"] for r in rounds), 2)
    return out


def _row_state(peer: _Peer, mode: str, summary: dict[str, Any] | None) -> str:
    if peer.status != "ready":
        return "not run: " + ("not installed" if peer.reason.startswith("not installed") else peer.status)
    if not peer.covers.get(mode.split()[0]):
        return "n/a"
    if summary is None:
        return "no result"
    if summary["spans_per_call"] <= 0:
        return "VOID: no spans exported"
    if summary["bare_spans_per_call"] > 0:
        return "VOID: spans in the bare phase"
    return "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=150, help="calls per side, tool, mode and round")
    parser.add_argument("--chunk", type=int, default=25,
                        help="within a round, bare and instrumented alternate every CHUNK calls")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=50, help="calls per mode and side before measuring")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated, from {', '.join(TOOLS)}")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from {', '.join(MODES)}")
    parser.add_argument("--python", action="append", default=[], metavar="TOOL=PATH",
                        help="the interpreter of TOOL's venv (default: this interpreter)")
    parser.add_argument("--keep-env", action="store_true",
                        help="keep TRACELOOP_*/OTEL_*/OPENLIT_*/SPENDMETER_* for the workers")
    parser.add_argument("--json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker)
        return

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for t in tools:
        if t not in TOOLS:
            parser.error(f"unknown tool {t!r}; choose from {', '.join(TOOLS)}")
    for m in modes:
        if m not in MODES:
            parser.error(f"unknown mode {m!r}; choose from {', '.join(MODES)}")
    pythons = {t: sys.executable for t in tools}
    for item in args.python:
        tool, _, path = item.partition("=")
        if tool not in TOOLS or not path:
            parser.error(f"--python wants TOOL=PATH, got {item!r}")
        pythons[tool] = path
    env = dict(os.environ) if args.keep_env else {
        k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_ENV_PREFIXES)}
    stripped = sorted(set(os.environ) - set(env))
    logdir = tempfile.mkdtemp(prefix="peers-")
    machine = _machine()
    started = time.monotonic()

    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['platform']}, "
          f"load average {', '.join(f'{x:.2f}' for x in machine['loadavg_start'] or ())}")
    print(f"{args.calls} calls per side, tool, mode and round, bare and instrumented alternating every {args.chunk} "
          f"calls; {args.rounds} rounds; {args.warmup} warm-up calls per mode and side; "
          f"worker logs in {logdir}")
    print("conditions: spans -> SDK TracerProvider, SimpleSpanProcessor, counting no-op exporter; OTel metrics "
          "(peers) -> SDK MeterProvider, in-memory reader read once at the end; log records -> SDK LoggerProvider, "
          "counting no-op exporter; spendmeter: spans, Prometheus metrics (private registry), pricing")
    if stripped:
        print(f"removed from the workers' environment: {', '.join(stripped)}")
    peers: list[_Peer] = []
    for t in tools:  # one at a time, so setups do not compete for the two cores
        peer = _Peer(t, pythons[t], env, logdir)
        peers.append(peer)
        if peer.status == "ready":
            peer.checks = peer.ask(cmd="prepare", modes=modes, warmup=args.warmup).get("checks", {})

    print("\ntools")
    for p in peers:
        if p.status != "ready":
            print(f"  {p.name:<18} {p.reason or p.status}  (python: {p.python})")
            continue
        i = p.info
        pkgs = ", ".join(f"{k} {v}" for k, v in i.get("packages", {}).items())
        print(f"  {p.name:<18} {i.get('version', pkgs)}; Python {i['python']}")
        sdks = i["sdks"]
        print(f"  {'':<18} SDKs: openai {sdks['openai']}, anthropic {sdks['anthropic']}, httpx2 {sdks['httpx2']}, "
              f"opentelemetry-sdk {sdks['opentelemetry-sdk']}, wrapt {sdks['wrapt']}")
        for key in ("content", "toggle", "finish", "pricing", "anthropic", "anthropic SDK spans"):
            if key in i:
                print(f"  {'':<18} {key}: {i[key]}")
        seen = {m: c["content_seen"] for m, c in p.checks.items()}
        if seen:
            kinds = sorted({"yes" if v else "no" for v in seen.values()})
            print(f"  {'':<18} prompt text found in its exported spans/logs: {'/'.join(kinds)}"
                  + ("" if len(kinds) == 1 else f" ({', '.join(m for m, v in seen.items() if v)})"))
    versions = {json.dumps({k: p.info["sdks"][k] for k in ("openai", "anthropic", "opentelemetry-sdk")})
                for p in peers if p.status == "ready"}
    if len(versions) > 1:
        print("  WARNING: the workers run different SDK versions; compare ratios, not absolute µs, across tools")

    live = [p for p in peers if p.status == "ready"]
    for r in range(args.rounds):
        order = live[r % len(live):] + live[: r % len(live)] if live else []
        for mode in modes:
            for p in order:
                if not p.covers.get(mode.split()[0]) or p.proc is None:
                    continue
                res = p.ask(cmd="run", mode=mode, calls=args.calls, chunk=args.chunk, bare_first=r % 2 == 0)
                if "error" in res:
                    print(f"  {p.name} / {mode}: {res['error']} (log: {p.log})")
                    continue
                p.results.setdefault(mode, []).append(res)
        print(f"  round {r + 1}/{args.rounds} done ({time.monotonic() - started:.0f} s)", flush=True)
    for p in live:
        if p.proc is not None:
            p.end = p.ask(cmd="finish")
            p.close()
    machine["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None

    summaries: dict[str, dict[str, Any]] = {}
    for p in peers:
        summaries[p.name] = {}
        for mode in modes:
            s = _summarise(p.results[mode]) if p.results.get(mode) else None
            state = _row_state(p, mode, s)
            summaries[p.name][mode] = {"state": state, **(s or {}), "raw": p.results.get(mode, [])}
            if state.startswith("VOID"):
                print(f"  WARNING: {p.name} / {mode}: {state}; its row is not a comparison")

    print(f"\nper call, median of {args.rounds} rounds of {args.calls} calls a side; added and × are paired with the "
          f"bare side of the same round")
    head = (f"{'mode':<19}{'tool':<18}" + "".join(f"{'bare':>8}{'instr':>8}{'added':>8}{'×':>7} " for _ in METRICS)
            + f"{'spans':>6}{'logs':>5}")
    print(f"{'':<37}" + "".join(f"{t:^32}" for t in ("thread CPU µs", "wall µs", "process CPU µs")))
    print(head)
    for mode in modes:
        for p in peers:
            s = summaries[p.name][mode]
            if "thread" not in s:
                print(f"{mode:<19}{p.name:<18}{s['state']}")
                continue
            cells = "".join(f"{s[m]['bare_us']:>8.1f}{s[m]['instrumented_us']:>8.1f}{s[m]['added_us']:>8.1f}"
                            f"{s[m]['ratio']:>7.3f} " for m in METRICS)
            flag = "" if s["state"] == "ok" else f"  {s['state']}"
            print(f"{mode:<19}{p.name:<18}{cells}{s['spans_per_call']:>6.2f}{s['logs_per_call']:>5.1f}{flag}")
        print()

    checks: dict[str, Any] = {}
    print("check: spendmeter's added µs ≤ 1/3 of the lightest peer's in the same run, and ≤ 1.05× the bare call")
    for m in ("thread", "process", "wall"):
        print(f"  {METRIC_TITLES[m]}")
        for mode in modes:
            me = summaries.get("spendmeter", {}).get(mode, {})
            anchors = [(summaries[a][mode][m]["added_us"], a) for a in ANCHORS
                       if a in summaries and summaries[a][mode]["state"] == "ok"]
            if me.get("state") != "ok" or not anchors:
                print(f"    {mode:<19} - (spendmeter {me.get('state', 'not run')}, {len(anchors)} peers measured)")
                continue
            lightest, name = min(anchors)
            added, ratio = me[m]["added_us"], me[m]["ratio"]
            third = added <= lightest / 3
            bare_ok = ratio <= 1.05
            checks.setdefault(m, {})[mode] = {"spendmeter_added_us": added, "lightest_peer": name,
                                              "lightest_peer_added_us": lightest, "third": third,
                                              "ratio": ratio, "within_1_05": bare_ok}
            floor = summaries.get(FLOOR, {}).get(mode, {})
            floor_note = ""
            if floor.get("state") == "ok":
                checks[m][mode]["span_floor_added_us"] = floor[m]["added_us"]
                floor_note = f";  one bare span: +{floor[m]['added_us']:.1f}"
            print(f"    {mode:<19} spendmeter +{added:.1f} µs vs {name} +{lightest:.1f} (1/3 = {lightest / 3:.1f}): "
                  f"{'PASS' if third else 'FAIL'};  ×{ratio:.3f} ≤ 1.05: {'PASS' if bare_ok else 'FAIL'}{floor_note}")
    for p in live:
        if p.end:
            metrics = p.end.get("metrics") or ", ".join(p.end.get("otel_metrics", [])) or "none"
            print(f"  metrics recorded by {p.name}: {metrics}")
    load = machine.get("loadavg_end")
    print(f"done in {time.monotonic() - started:.0f} s; load average at the end "
          f"{', '.join(f'{x:.2f}' for x in load or ())}")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "config": {"calls": args.calls, "chunk": args.chunk, "rounds": args.rounds,
                                                       "warmup": args.warmup, "modes": modes,
                                                       "env_removed": stripped},
                       "tools": {p.name: {"status": p.status, "reason": p.reason, "python": p.python,
                                          "info": p.info, "checks": p.checks, "end": p.end} for p in peers},
                       "results": summaries, "checks": checks}, f, indent=2)


if __name__ == "__main__":
    main()
