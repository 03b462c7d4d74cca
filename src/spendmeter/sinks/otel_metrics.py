"""OpenTelemetry metrics for each finished call: Prometheus-mirroring counters and the GenAI histograms.

Instruments are created once, in the constructor; names, units and the Prometheus names a Collector gives
them are tabled in docs/telemetry.md. In short: `llm_cost_usd`, `llm_tokens`, `llm_reasoning_tokens`,
`llm_requests`, `llm_unpriced_requests` (counters -> `..._total`), `llm_request_duration_seconds`, and the
GenAI semconv histograms `gen_ai.client.token.usage` and `gen_ai.client.operation.duration`.

The mirror counters use the Prometheus label names as attribute keys, so the series match `/metrics` label for
label. Histograms carry no `user` (as `llm_request_duration_seconds` in CONVENTIONS.md): a user label times
fourteen buckets is where cardinality explodes; per-user numbers live on the counters.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider

from spendmeter import semconv as sc
from spendmeter.call import UNKNOWN, Call, Cost, Unpriced

log = logging.getLogger("spendmeter")

# Token classes of the `type` attribute, in the Prometheus contract's words.
TOKEN_TYPES = ("input", "cache_read", "cache_write", "output")

# The same boundaries as `llm_request_duration_seconds` in sinks/metrics.py (a test pins them equal), so the
# series a Collector produces line up bucket for bucket with what /metrics serves.
REQUEST_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


class LabelValues(Protocol):
    """What sinks/metrics.py's `LabelPolicy` offers: a bounded, possibly hashed, label value."""

    def value(self, label: str, raw: str | None) -> tuple[str, bool]: ...


def _version() -> str | None:
    try:
        return version("spendmeter")
    except PackageNotFoundError:
        return None


def _label(value: str | None) -> str:
    return value if value else UNKNOWN


class OtelMetricsSink:
    """Records each finished call on OTel instruments. Uses the given or the global MeterProvider."""

    def __init__(
        self, meter_provider: MeterProvider | None = None, label_policy: LabelValues | None = None
    ) -> None:
        """Instruments are created here, once.

        `label_policy`: a `LabelPolicy` configured like the Prometheus sink's (its own instance, so folds are
        not counted twice), so users are hashed and label values capped the same way on both paths. Without
        one, values go out as they are (`unknown` when never set).
        """
        self._policy = label_policy
        # Never sets the global provider: with none given, a proxy meter follows whatever the app installs.
        meter = metrics.get_meter("spendmeter", _version(), meter_provider=meter_provider)
        self._cost = meter.create_counter(
            sc.LLM_COST_USD, unit="{USD}", description="LLM cost in US dollars."
        )
        self._tokens = meter.create_counter(
            sc.LLM_TOKENS, unit="{token}", description="Billed tokens by disjoint class (type)."
        )
        self._reasoning = meter.create_counter(
            sc.LLM_REASONING_TOKENS, unit="{token}", description="Reasoning tokens (a subset of output)."
        )
        self._requests = meter.create_counter(
            sc.LLM_REQUESTS, unit="{request}", description="LLM calls by status and usage source."
        )
        self._duration = meter.create_histogram(
            sc.LLM_REQUEST_DURATION_SECONDS,
            unit="s",
            description="LLM call duration, streams included until their end.",
            explicit_bucket_boundaries_advisory=list(REQUEST_DURATION_BUCKETS),
        )
        self._unpriced = meter.create_counter(
            sc.LLM_UNPRICED_REQUESTS, unit="{request}", description="Calls no price was found for."
        )
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
        """Record one finished call. Never raises."""
        try:
            self._record(call)
        except Exception:
            log.warning("spendmeter internal error in otel_metrics.on_call", exc_info=True)

    def _record(self, call: Call) -> None:
        who = self._labels(call)
        usage = call.usage
        self._requests.add(1, {**who, "status": call.status, "usage": usage.source})
        if isinstance(call.cost, Cost):
            self._cost.add(float(call.cost.total), who)  # Decimal until here, the export edge
        elif isinstance(call.cost, Unpriced):
            self._unpriced.add(1, {"provider": who["provider"], "model": who["model"]})
        counts = (usage.input, usage.cache_read, usage.cache_write, usage.output)
        for token_type, count in zip(TOKEN_TYPES, counts, strict=True):
            if count:
                self._tokens.add(count, {**who, "type": token_type})
        if usage.reasoning:
            self._reasoning.add(usage.reasoning, who)
        if call.status != "blocked":  # a blocked call sent nothing: it has no duration to speak of
            self._duration.record(
                call.duration_s,
                {k: who[k] for k in ("provider", "model", "feature", "agent")},
            )
        self._record_semconv(call, who)

    def _labels(self, call: Call) -> dict[str, str]:
        a = call.attribution
        raw = {
            "provider": call.provider,
            "model": call.model,
            "user": a.user,
            "feature": a.feature,
            "agent": a.agent,
        }
        if self._policy is None:
            return {label: _label(value) for label, value in raw.items()}
        return {label: self._policy.value(label, value)[0] for label, value in raw.items()}

    def _record_semconv(self, call: Call, who: dict[str, str]) -> None:
        attributes: dict[str, str | int] = {
            sc.GEN_AI_OPERATION_NAME: sc.operation_name(call.operation),
            sc.GEN_AI_PROVIDER_NAME: call.provider,
        }
        optional = {
            sc.GEN_AI_REQUEST_MODEL: call.request_model,
            sc.GEN_AI_RESPONSE_MODEL: call.response_model,
            sc.SERVER_ADDRESS: call.server_address,
            sc.SERVER_PORT: call.server_port,
            # Through the label policy, so a cap on features and agents holds here too.
            sc.SPENDMETER_FEATURE: call.attribution.feature and who["feature"],
            sc.GEN_AI_AGENT_NAME: call.attribution.agent and who["agent"],
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
