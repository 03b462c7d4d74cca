"""OpenTelemetry metrics for each finished call: Prometheus-mirroring counters and the GenAI histograms.

Instruments are created once, in the constructor; names, units and the Prometheus names a Collector gives
them are tabled in docs/telemetry.md. In short: `llm_cost_usd`, `llm_tokens`, `llm_reasoning_tokens`,
`llm_requests`, `llm_unpriced_requests`, `llm_tool_uses` (counters -> `..._total`),
`llm_request_duration_seconds`, and the GenAI semconv histograms `gen_ai.client.token.usage` and
`gen_ai.client.operation.duration`.

Instruments are built from the metric contract (telemetry.contract) and take the label values the pipeline
computed for the call (`call.labels`), so the series match `/metrics` label for label, hashed and capped the
same way. Histograms carry no `user` (like `llm_request_duration_seconds` on /metrics): a user label times
fourteen buckets is where cardinality explodes; per-user numbers live on the counters.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider

from spendmeter.call import Call
from spendmeter.telemetry import contract as c
from spendmeter.telemetry import semconv as sc
from spendmeter.telemetry.labels import Labels


def _version() -> str | None:
    try:
        return version("spendmeter")
    except PackageNotFoundError:
        return None


def _instrument(meter: Any, metric: c.Metric) -> Any:
    if metric.kind == "histogram":
        return meter.create_histogram(
            metric.name,
            unit=metric.unit,
            description=metric.help,
            explicit_bucket_boundaries_advisory=list(metric.buckets or ()),
        )
    return meter.create_counter(metric.name, unit=metric.unit, description=metric.help)


class OtelMetricsSink:
    """Records each finished call on OTel instruments. Uses the given or the global MeterProvider."""

    kind = "otel_metrics"

    def __init__(self, meter_provider: MeterProvider | None = None, tags: tuple[str, ...] = ()) -> None:
        self._series = (*c.SERIES, *tags)  # the label names of `call.labels.values`
        self._duration_labels = (*c.DURATION_LABELS, *tags)
        # Never sets the global provider: with none given, a proxy meter follows whatever the app installs.
        meter = metrics.get_meter("spendmeter", _version(), meter_provider=meter_provider)
        self._cost = _instrument(meter, c.COST)
        self._tokens = _instrument(meter, c.TOKENS)
        self._reasoning = _instrument(meter, c.REASONING)
        self._requests = _instrument(meter, c.REQUESTS)
        self._duration = _instrument(meter, c.DURATION)
        self._unpriced = _instrument(meter, c.UNPRICED)
        self._tool_uses = _instrument(meter, c.TOOL_USES)
        self._token_usage = meter.create_histogram(
            sc.GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(sc.TOKEN_USAGE_BUCKETS),
        )
        self._operation_duration = meter.create_histogram(
            sc.GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(sc.OPERATION_DURATION_BUCKETS),
        )

    def on_call(self, call: Call) -> None:
        labels: Labels = call.labels
        who = dict(zip(self._series, labels.values, strict=True))
        m = c.measurements(call)
        self._requests.add(1, {**who, "status": m.status, "usage": m.usage})
        if m.unpriced:
            self._unpriced.add(1, {"provider": who["provider"], "model": who["model"]})
        for share in m.shares:  # per model series, as on /metrics
            series = dict(zip(self._series, share.values, strict=True))
            if share.cost_usd is not None:
                self._cost.add(share.cost_usd, series)
            for token_type, count in share.tokens:
                self._tokens.add(count, {**series, "type": token_type})
            if share.reasoning:
                self._reasoning.add(share.reasoning, series)
        for tool, uses in m.tool_uses:
            self._tool_uses.add(uses, {**who, "tool": tool})
        if m.duration_s is not None:
            self._duration.record(m.duration_s, {k: who[k] for k in self._duration_labels})
        self._record_semconv(call, labels)

    def _record_semconv(self, call: Call, labels: Labels) -> None:
        attributes: dict[str, str | int] = {
            sc.GEN_AI_OPERATION_NAME: sc.operation_name(call.operation),
            sc.GEN_AI_PROVIDER_NAME: call.provider,
        }
        optional = {
            sc.GEN_AI_REQUEST_MODEL: call.request_model,
            sc.GEN_AI_RESPONSE_MODEL: call.response_model,
            sc.SERVER_ADDRESS: call.server_address,
            sc.SERVER_PORT: call.server_port,
            # The bounded label values, so a cap on features and agents holds here too.
            sc.SPENDMETER_FEATURE: call.attribution.feature and labels.feature,
            sc.GEN_AI_AGENT_NAME: call.attribution.agent and labels.agent,
        }
        attributes.update({k: v for k, v in optional.items() if v is not None})
        if call.status != "ok":
            attributes[sc.ERROR_TYPE] = sc.error_type(call.status, call.error_type)
        if call.status == "blocked":
            return  # no operation took place; the request counter above has it
        self._operation_duration.record(call.duration_s, attributes)
        usage = call.usage
        if usage.source != "missing":  # semconv: record token usage only when it is known
            for token_type, count in (
                (sc.TOKEN_TYPE_INPUT, usage.prompt_total),
                (sc.TOKEN_TYPE_OUTPUT, usage.output),
            ):
                self._token_usage.record(count, {**attributes, sc.GEN_AI_TOKEN_TYPE: token_type})
