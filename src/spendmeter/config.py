"""`init()`: arguments and SPENDMETER_* / OTEL_* environment → wiring of pricing, sinks, budgets, server.

Every environment variable spendmeter reads is a constant below. An argument given to `init()` wins over
the environment. Bad configuration fails here, loudly, naming the file, key and fix.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from spendmeter.errors import ConfigError
from spendmeter.recorder import RECORDER

log = logging.getLogger("spendmeter")

ENV_SERVICE_NAME = "SPENDMETER_SERVICE_NAME"  # falls back to OTEL_SERVICE_NAME
ENV_PROMETHEUS_PORT = "SPENDMETER_PROMETHEUS_PORT"  # default 9464; "off" disables the /metrics server
ENV_PROMETHEUS_HOST = "SPENDMETER_PROMETHEUS_HOST"  # default 127.0.0.1
ENV_PRICES = "SPENDMETER_PRICES"  # price overrides file (TOML or YAML)
ENV_BUDGETS = "SPENDMETER_BUDGETS"  # budgets file (YAML)
ENV_CAPTURE_CONTENT = "SPENDMETER_CAPTURE_CONTENT"  # also OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT
ENV_HASH_USERS = "SPENDMETER_HASH_USERS"  # a secret key: user label values become keyed hashes
ENV_LABEL_CAPS = "SPENDMETER_LABEL_CAPS"  # e.g. "user=1000,feature=100"
ENV_LABEL_MAX_LENGTH = "SPENDMETER_LABEL_MAX_LENGTH"  # default 64
ENV_USAGE_HOSTS = "SPENDMETER_USAGE_HOSTS"  # hosts where streams get stream_options.include_usage added
ENV_OTLP_ENDPOINT = "SPENDMETER_OTLP_ENDPOINT"  # falls back to OTEL_EXPORTER_OTLP_ENDPOINT
ENV_LEDGER = "SPENDMETER_LEDGER"  # per-call ledger: a SQLite path, sqlite:///file.db or postgresql://...
OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTEL_CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

DEFAULT_PORT = 9464
DEFAULT_HOST = "127.0.0.1"
DEFAULT_USAGE_HOSTS = ("api.openai.com", ".openai.azure.com")
_TRUE = {"1", "true", "yes", "on"}


@dataclass
class Runtime:
    """What init() built; shutdown() takes it apart."""

    metrics: Any = None
    registry: CollectorRegistry | None = None
    server: Any = None
    budgets: Any = None
    pricebook: Any = None
    span_sink: Any = None
    otel_metrics: Any = None
    ledger: Any = None
    owned_providers: list[Any] = field(default_factory=list)
    patched: dict[str, int] = field(default_factory=dict)


_lock = threading.Lock()
_runtime: Runtime | None = None
_metrics_by_registry: dict[int, Any] = {}


def _env_flag(*names: str) -> bool | None:
    for name in names:
        value = os.environ.get(name)
        if value is not None:
            return value.strip().lower() in _TRUE
    return None


def _parse_caps(text: str) -> dict[str, int]:
    caps: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        label, _, number = part.partition("=")
        if not number.strip().isdigit():
            raise ConfigError(f"expected label=N pairs such as 'user=1000', got {part!r}", key=ENV_LABEL_CAPS)
        caps[label.strip()] = int(number)
    return caps


def init(
    *,
    service_name: str | None = None,
    prometheus_port: int | None = None,
    prometheus_host: str | None = None,
    otlp_endpoint: str | None = None,
    prices: str | os.PathLike[str] | None = None,
    budgets: str | os.PathLike[str] | None = None,
    capture_content: bool | None = None,
    label_caps: Mapping[str, int] | None = None,
    hash_users_key: str | None = None,
    usage_hosts: tuple[str, ...] | None = None,
    registry: CollectorRegistry | None = None,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    serve_metrics: bool = True,
    budget_clock: Any = None,
    ledger: str | os.PathLike[str] | None = None,
) -> Runtime:
    """Wire everything and instrument the SDKs. Calling it again rewires (tests, reconfiguration)."""
    global _runtime
    from prometheus_client import disable_created_metrics

    from spendmeter.pricing import load_pricebook
    from spendmeter.providers import _targets
    from spendmeter.sinks.metrics import LabelPolicy, MetricsSink
    from spendmeter.sinks.spans import SpanSink

    disable_created_metrics()
    env = os.environ
    service_name = service_name or env.get(ENV_SERVICE_NAME) or env.get(OTEL_SERVICE_NAME) or "spendmeter"
    prices = prices if prices is not None else env.get(ENV_PRICES) or None
    budgets = budgets if budgets is not None else env.get(ENV_BUDGETS) or None
    ledger = ledger if ledger is not None else env.get(ENV_LEDGER) or None
    if capture_content is None:
        capture_content = bool(_env_flag(ENV_CAPTURE_CONTENT, OTEL_CAPTURE_CONTENT))
    caps = dict(label_caps) if label_caps is not None else _parse_caps(env.get(ENV_LABEL_CAPS, ""))
    hash_key = hash_users_key if hash_users_key is not None else env.get(ENV_HASH_USERS) or None
    max_length = int(env.get(ENV_LABEL_MAX_LENGTH, "64"))
    if usage_hosts is None:
        raw_hosts = env.get(ENV_USAGE_HOSTS)
        usage_hosts = tuple(h.strip() for h in raw_hosts.split(",") if h.strip()) if raw_hosts else DEFAULT_USAGE_HOSTS
    otlp_endpoint = otlp_endpoint or env.get(ENV_OTLP_ENDPOINT) or env.get(OTEL_EXPORTER_OTLP_ENDPOINT) or None
    port_text = env.get(ENV_PROMETHEUS_PORT)
    if port_text is not None and port_text.strip().lower() == "off":
        serve_metrics = False
    if prometheus_port is None:
        try:
            prometheus_port = int(port_text) if port_text and port_text.strip().lower() != "off" else DEFAULT_PORT
        except ValueError:
            raise ConfigError(f"expected a port number or 'off', got {port_text!r}", key=ENV_PROMETHEUS_PORT) from None
    prometheus_host = prometheus_host or env.get(ENV_PROMETHEUS_HOST) or DEFAULT_HOST

    # Load what can be wrong first, so a bad file fails before anything is changed.
    pricebook = load_pricebook(prices)
    engine = None
    if budgets is not None:
        from spendmeter.budgets import BudgetEngine, load_budgets

        engine = BudgetEngine(load_budgets(budgets), clock=budget_clock, estimate_cost=_estimator(pricebook))

    ledger_sink = None
    if ledger is not None:
        from spendmeter.sinks.ledger import LedgerSink

        ledger_sink = LedgerSink(ledger, service_name=service_name)  # connects now: a bad target fails here

    with _lock:
        shutdown(_keep_patches=True)
        reg = registry if registry is not None else REGISTRY
        metrics = _metrics_by_registry.get(id(reg))
        if metrics is None:
            metrics = MetricsSink(
                registry=reg, policy=LabelPolicy(caps, max_length, hash_key.encode() if hash_key else None)
            )
            _metrics_by_registry[id(reg)] = metrics
        else:
            metrics.policy = LabelPolicy(caps, max_length, hash_key.encode() if hash_key else None)
        rt = Runtime(metrics=metrics, registry=reg, pricebook=pricebook, budgets=engine)
        owned_tp, owned_mp = _otlp_providers(otlp_endpoint, service_name, tracer_provider, meter_provider)
        rt.owned_providers = [p for p in (owned_tp, owned_mp) if p is not None]
        rt.span_sink = SpanSink(tracer_provider=tracer_provider or owned_tp, capture_content=capture_content)
        sinks: list[Any] = [metrics, rt.span_sink]
        if meter_provider is not None or owned_mp is not None or _global_meter_provider_set():
            from spendmeter.sinks.otel_metrics import OtelMetricsSink

            rt.otel_metrics = OtelMetricsSink(
                meter_provider=meter_provider or owned_mp,
                label_policy=LabelPolicy(caps, max_length, hash_key.encode() if hash_key else None),
            )
            sinks.append(rt.otel_metrics)
        if engine is not None:
            engine.register_gauges(reg)
            sinks.append(engine)
        if ledger_sink is not None:
            ledger_sink.on_error = metrics.count_internal_error
            rt.ledger = ledger_sink
            sinks.append(ledger_sink)

        RECORDER.sinks = sinks
        RECORDER.span_sink = rt.span_sink
        RECORDER.pricer = pricebook.price_call
        RECORDER.budgets = engine
        RECORDER.capture_content = capture_content
        RECORDER.usage_hosts = usage_hosts
        RECORDER.on_internal_error = metrics.count_internal_error

        if serve_metrics:
            from spendmeter.server import MetricsServer

            try:
                rt.server = MetricsServer(
                    prometheus_host,
                    prometheus_port,
                    registry=reg,
                    before_scrape=_before_scrape,
                    budgets_status=_budget_status,
                ).start()
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve /metrics on {prometheus_host}:{prometheus_port}: {exc.strerror}; "
                    f"choose another port (prometheus_port= or {ENV_PROMETHEUS_PORT}) or 'off'",
                    key="prometheus_port",
                ) from None
        rt.patched = _targets.instrument()
        _runtime = rt
    _report_sdks(rt.patched)
    return rt


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


def _before_scrape() -> None:
    RECORDER.drain()
    if _runtime is not None and _runtime.budgets is not None:
        _runtime.budgets.refresh_gauges()


def _budget_status() -> list[dict[str, Any]]:
    if _runtime is None or _runtime.budgets is None:
        return []
    return [s.as_dict() for s in _runtime.budgets.status()]


def _report_sdks(patched: dict[str, int]) -> None:
    for sdk in ("openai", "anthropic"):
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
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({"service.name": service_name})
    base = endpoint.rstrip("/")
    owned_tp = owned_mp = None
    app_tp = type(trace.get_tracer_provider()).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider")
    if tracer_provider is None and not app_tp:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        owned_tp = TracerProvider(resource=resource)
        owned_tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
    if meter_provider is None and not _global_meter_provider_set():
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics"))
        owned_mp = MeterProvider(resource=resource, metric_readers=[reader])
    del metrics
    return owned_tp, owned_mp


def shutdown(_keep_patches: bool = False) -> None:
    """Flush and stop what init() started. Also runs at interpreter exit."""
    global _runtime
    rt = _runtime
    _runtime = None
    RECORDER.drain()
    if rt is None:
        return
    if rt.server is not None:
        rt.server.stop()
    if rt.budgets is not None:
        try:
            rt.budgets.close()
        except Exception:
            log.warning("spendmeter: closing the budget spend store failed", exc_info=True)
    if rt.ledger is not None:
        try:
            rt.ledger.close()  # writes the rows still queued
        except Exception:
            log.warning("spendmeter: closing the ledger failed", exc_info=True)
    for provider in rt.owned_providers:
        try:
            provider.shutdown()
        except Exception:
            log.warning("spendmeter: flushing an OpenTelemetry provider failed", exc_info=True)
    if not _keep_patches:
        from spendmeter.providers import _targets

        _targets.uninstrument()
        RECORDER.sinks = []
        RECORDER.span_sink = None
        RECORDER.budgets = None


def runtime() -> Runtime | None:
    return _runtime


atexit.register(shutdown)
