"""`init()` and `shutdown()`: build a pipeline from the settings, install it with one assignment, take the
previous one apart.

`init()` loads everything that can be wrong first (prices, budgets, the ledger target) and builds the new
pipeline completely before it changes anything; if a step fails, what it had opened is closed again and the
current pipeline stays as it was. A second `init()` swaps pipelines atomically while calls are in flight: a
call finishes into whichever pipeline is current when it finishes, exactly once. What must outlive a re-init
is carried over from the previous pipeline, never kept in a global: the Prometheus sink and the budget gauges
of the same registry (so counters never go back), the `/metrics` server on the same address, and the sinks
added with `add_sink()`.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from spendmeter._contain import report
from spendmeter.errors import ConfigError
from spendmeter.instrumentation import patches
from spendmeter.runtime import finisher
from spendmeter.runtime import pipeline as pl
from spendmeter.runtime import settings as st
from spendmeter.telemetry.labels import LabelPolicy

log = logging.getLogger("spendmeter")
_init_lock = threading.Lock()


@dataclass
class Runtime:
    """What init() built; shutdown() takes it apart. Reachable as `current().runtime`."""

    settings: st.Settings
    registry: CollectorRegistry
    metrics: Any = None  # the PrometheusSink of `registry`
    server: Any = None
    budgets: Any = None
    gauges: Any = None
    pricebook: Any = None
    span_sink: Any = None
    otel_metrics: Any = None
    ledger: Any = None
    owned_providers: list[Any] = field(default_factory=list)
    patched: dict[str, int] = field(default_factory=dict)


def init(
    *,
    registry: CollectorRegistry | None = None,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    budget_clock: Any = None,
    **options: Any,
) -> Runtime:
    """Wire everything and instrument the SDKs. Calling it again rewires (tests, reconfiguration).

    `options` are the settings of `spendmeter.runtime.settings.resolve` (service_name, prometheus_port,
    prometheus_host, otlp_endpoint, prices, budgets, ledger, capture_content, label_caps, label_tags,
    hash_users_key, usage_hosts, providers, serve_metrics, allowed_hosts, metrics_auth, tls_cert, tls_key,
    shutdown_timeout_s, finish), each also read from its SPENDMETER_* variable; an argument wins. A misspelt one is a
    TypeError, a bad value a ConfigError that names it.
    """
    from prometheus_client import disable_created_metrics

    settings = st.resolve(**options)
    disable_created_metrics()
    with _init_lock:
        previous = pl.current().runtime
        rt = Runtime(settings=settings, registry=registry if registry is not None else REGISTRY)
        try:
            new = _build(rt, previous, tracer_provider, meter_provider, budget_clock)
        except BaseException:
            _close(rt, keep=previous)
            raise
        finisher.flush()  # calls that ended before this init() are written by the pipeline they ended under
        finisher.set_mode(settings.finish)
        pl.update(lambda old: new.replace(extra_sinks=old.extra_sinks))  # the one assignment
        if previous is not None:
            _close(previous, keep=rt)
        rt.patched = patches.instrument()
    report_sdks(rt.patched)
    return rt


def _prometheus_sink(rt: Runtime, previous: Runtime | None) -> Any:
    """The previous sink of the same registry carries on (counters never go back), unless the tag labels
    changed: then its metrics leave the registry and new ones, with the new label set, start from zero."""
    from spendmeter.sinks.prometheus import PrometheusSink

    old = previous.metrics if previous is not None else None
    tags = rt.settings.label_tags
    if old is not None and old.tags == tags:
        return old
    if old is not None:
        log.warning("spendmeter: the exported tag labels changed (%s -> %s): the call metrics restart from zero",
                    ",".join(old.tags) or "none", ",".join(tags) or "none")
        old.unregister()
    return PrometheusSink(rt.registry, tags)


def _build(rt: Runtime, previous: Runtime | None, tracer_provider: Any, meter_provider: Any, clock: Any) -> pl.Pipeline:
    from spendmeter.pricing import load_pricebook, pricer
    from spendmeter.sinks.spans import SpanSink

    s = rt.settings
    _check_multiproc_dir()
    rt.pricebook = load_pricebook(s.prices)
    if s.budgets is not None:
        from spendmeter.budgets import BudgetEngine, load_budgets

        config = load_budgets(s.budgets)
        old = previous.budgets if previous is not None else None
        # The same store (memory included) carries on: a re-init must not forget the period's spend.
        store = old.store if old is not None and old.config.store_path == config.store_path else None
        rt.budgets = BudgetEngine(config, clock=clock, store=store, estimate_cost=_estimator(rt.pricebook),
                                  previous=old if store is not None else None)  # reservations carry over
    mapping = _providers(rt.pricebook, s.providers)
    _check_names(rt, mapping)  # a provider name no call can carry is a typo: fail before anything starts
    if s.ledger is not None:
        from spendmeter.sinks.ledger import LedgerSink

        old = previous.ledger if previous is not None else None
        if old is not None and (previous.settings.ledger, previous.settings.service_name) == (  # type: ignore[union-attr]
            s.ledger,
            s.service_name,
        ):
            rt.ledger = old  # the same writer: no row is caught between a closing and an opening ledger
        else:
            rt.ledger = LedgerSink(s.ledger, service_name=s.service_name)  # connects now: a bad target fails here

    same_registry = previous is not None and previous.registry is rt.registry
    rt.metrics = _prometheus_sink(rt, previous if same_registry else None)
    owned_tp, owned_mp = _otlp_providers(s.otlp_endpoint, s.service_name, tracer_provider, meter_provider)
    rt.owned_providers = [p for p in (owned_tp, owned_mp) if p is not None]
    # Inline finishing keeps the span's whole life on the caller's thread: started when the call starts.
    rt.span_sink = SpanSink(
        tracer_provider=tracer_provider or owned_tp, capture_content=s.capture_content,
        defer_start=s.finish != "inline",
    )
    sinks: list[Any] = [rt.metrics, rt.span_sink]
    if meter_provider is not None or owned_mp is not None or _global_meter_provider_set():
        from spendmeter.sinks.otel_metrics import OtelMetricsSink

        rt.otel_metrics = OtelMetricsSink(meter_provider=meter_provider or owned_mp, tags=s.label_tags)
        sinks.append(rt.otel_metrics)
    if rt.budgets is not None:
        from spendmeter.budgets.gauges import BudgetGauges

        reuse = same_registry and previous.gauges is not None  # type: ignore[union-attr]
        rt.gauges = previous.gauges if reuse else BudgetGauges(rt.registry)  # type: ignore[union-attr]
        rt.budgets.register_gauges(rt.gauges)
        sinks.append(rt.budgets)
    elif same_registry:
        rt.gauges = previous.gauges  # type: ignore[union-attr]
        if rt.gauges is not None:
            rt.gauges.reset()
    if rt.ledger is not None:
        sinks.append(rt.ledger)
    if s.serve_metrics:
        rt.server = _server(rt, previous)
    return pl.Pipeline(
        pricer=pricer(rt.pricebook),
        guard=rt.budgets,
        labels=LabelPolicy(s.label_caps, s.label_max_length, s.hash_users_key, s.label_tags),
        sinks=tuple(sinks),
        spans=rt.span_sink,
        count_error=rt.metrics.count_internal_error,
        usage_hosts=s.usage_hosts,
        providers=mapping,
        capture_content=s.capture_content,
        runtime=rt,
    )


def _providers(pricebook: Any, given: Any) -> dict[str, str]:
    """The prices file's `[providers]` table merged with SPENDMETER_PROVIDERS / `init(providers=)`, which win
    for the same key (across keys, the most specific match wins at lookup)."""
    from spendmeter.providers.endpoints import canonical, normalize_where

    merged = {normalize_where(k): canonical(v) for k, v in pricebook.endpoint_providers.items()}
    return {**merged, **given}


def _check_names(rt: Runtime, mapping: dict[str, str]) -> None:
    from spendmeter.runtime import names

    configured = names.configured_providers(rt.pricebook, rt.budgets)
    names.check_providers(configured, names.live_providers(rt.pricebook, mapping))


def _server(rt: Runtime, previous: Runtime | None) -> Any:
    import ssl

    from spendmeter.server import Access, MetricsServer, tls_context

    s = rt.settings
    old = previous.server if previous is not None else None
    if (
        old is not None
        and old.registry is rt.registry
        and (old.bind_host, old.bind_port)
        == (
            s.prometheus_host,
            s.prometheus_port,
        )
    ):
        return old  # it reads the current pipeline: nothing to rewire
    if old is not None and (old.bind_host, old.bind_port) == (s.prometheus_host, s.prometheus_port):
        old.stop()  # same address, another registry: free the port first
        previous.server = None  # type: ignore[union-attr]
    access = Access.for_bind(s.prometheus_host, s.allowed_hosts, s.metrics_auth)
    try:
        tls = tls_context(s.tls_cert, s.tls_key) if s.tls_cert else None
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {s.tls_cert!r}: {exc}", key=st.ENV_TLS_CERT) from None
    try:
        return MetricsServer(s.prometheus_host, s.prometheus_port, registry=rt.registry, access=access, tls=tls).start()
    except OSError as exc:
        raise ConfigError(
            f"cannot serve /metrics on {s.prometheus_host}:{s.prometheus_port}: {exc.strerror}; choose another "
            f"port (prometheus_port= or {st.ENV_PROMETHEUS_PORT}) or 'off'",
            key="prometheus_port",
        ) from None


def _check_multiproc_dir() -> None:
    """prometheus_client's multiprocess mode writes every sample to files in this directory: a missing or
    unwritable one loses every metric (the writes fail inside prometheus_client), so refuse it here."""
    name = next((n for n in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir") if os.environ.get(n)), None)
    if name is None:
        return
    path = os.environ[name]
    if not os.path.isdir(path):
        raise ConfigError(f"{path} does not exist or is not a directory: create it before the workers start "
                          "(mkdir -p), or unset it for a single process", key=name)  # fmt: skip
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{path} is not writable by this process (uid {os.getuid()}): fix its permissions",
                          key=name)  # fmt: skip


def _estimator(pricebook: Any) -> Any:
    """For budgets with `estimate: true`: the most a call can cost in output, `max_tokens` x output price."""
    from spendmeter.call import Cost, Usage

    def estimate(call: Any) -> Any:
        if not call.request_max_tokens or not call.request_model:
            return None
        usage = Usage(output=call.request_max_tokens, source="estimated")
        cost = pricebook.price(call.provider, call.request_model, usage, tier=call.request_service_tier)
        return cost.total if isinstance(cost, Cost) else None

    return estimate


def report_sdks(patched: dict[str, int]) -> None:
    for sdk in ("openai", "anthropic", "litellm", "google.genai"):
        if not patched.get(sdk):
            log.info("spendmeter: the %s SDK is not installed; instrumenting the others", sdk)


def _global_meter_provider_set() -> bool:
    from opentelemetry import metrics

    return type(metrics.get_meter_provider()).__name__ not in ("_ProxyMeterProvider", "NoOpMeterProvider")


def _otlp_providers(
    endpoint: str | None, service_name: str, tracer_provider: Any, meter_provider: Any
) -> tuple[Any, Any]:
    """With an OTLP endpoint and no provider set by the application, build (and own) SDK providers."""
    if not endpoint:
        return None, None
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({"service.name": service_name})
    base = endpoint.rstrip("/")
    owned_tp = owned_mp = None
    app_tp = type(trace.get_tracer_provider()).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider")
    if tracer_provider is None and not app_tp:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        owned_tp = TracerProvider(resource=resource, shutdown_on_exit=False)  # our shutdown() does it, bounded
        owned_tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
    if meter_provider is None and not _global_meter_provider_set():
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics"))
        owned_mp = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
    return owned_tp, owned_mp


def _close(rt: Runtime, keep: Runtime | None) -> None:
    """Stop what `rt` started, except what `keep` took over."""
    kept = keep or Runtime(settings=rt.settings, registry=rt.registry)
    shared_store = kept.budgets is not None and rt.budgets is not None and kept.budgets.store is rt.budgets.store
    steps = (
        ("server", rt.server, kept.server, lambda x: x.stop()),
        ("budget store", rt.budgets, rt.budgets if shared_store else kept.budgets, lambda x: x.close()),
        ("ledger", rt.ledger, kept.ledger, lambda x: x.close()),  # writes the rows still queued
        *(("otel", p, None, lambda x: x.shutdown()) for p in rt.owned_providers),
    )
    # Each part closes in its own daemon thread, all within one deadline: an unreachable OTLP endpoint or a
    # frozen database must not hold the host's exit for the exporters' own (much longer) retry budgets.
    threads = []
    for what, part, taken_over, close in steps:
        if part is None or part is taken_over:
            continue
        thread = threading.Thread(target=_close_one, args=(what, part, close), name=f"spendmeter-close-{what}")
        thread.daemon = True
        thread.start()
        threads.append((what, thread))
    deadline = time.monotonic() + rt.settings.shutdown_timeout_s
    for what, thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning("spendmeter: closing the %s did not finish within %.1fs; left behind", what,
                        rt.settings.shutdown_timeout_s)  # fmt: skip
            report("shutdown.timeout")


def _close_one(what: str, part: Any, close: Any) -> None:
    try:
        close(part)
    except Exception:
        log.warning("spendmeter: closing the %s failed", what, exc_info=True)


def shutdown() -> None:
    """Flush and stop what init() started, restore the SDKs. Also runs at interpreter exit. Sinks added with
    `add_sink()` stay registered for a later `init()`."""
    from spendmeter import recorder

    with _init_lock:
        recorder.drain()
        previous = pl.update(lambda p: pl.Pipeline(extra_sinks=p.extra_sinks))
        patches.uninstrument()
        if previous.runtime is not None:
            _close(previous.runtime, keep=None)


atexit.register(shutdown)
