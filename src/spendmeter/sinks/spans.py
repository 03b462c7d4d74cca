"""The GenAI client span of each call: attribution and cost on the span the SDK's own spans nest under.

`on_start` opens a CLIENT span when the call starts (with an SDK tracer and one of the SDK's own samplers, a
deferred one: its ids and sampling decision now, the span itself when the call is finished, see
`sinks.deferred_span`); `activate` makes it current while the SDK sends the request (so the Anthropic SDK's
own span, and any HTTP client span, become its children); `on_call` writes the response, usage and cost
attributes and ends it. Attribute names come from `spendmeter.semconv`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from spendmeter.call import Call, Cost, Unpriced
from spendmeter.sinks.deferred_span import Deferral, DeferralBroken, DeferredSpan
from spendmeter.telemetry import semconv as sc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NULL_CONTEXT: AbstractContextManager[None] = nullcontext()
_UNSEEN = object()

# `call.capture` keys the recorder may use, each with the span attribute it becomes. The short names are what
# the provider adapters fill (the request's messages/input/prompt and system, as the SDK was given them).
_CONTENT_ATTRIBUTES = {
    "input": sc.GEN_AI_INPUT_MESSAGES,
    "output": sc.GEN_AI_OUTPUT_MESSAGES,
    "system": sc.GEN_AI_SYSTEM_INSTRUCTIONS,
    "input_messages": sc.GEN_AI_INPUT_MESSAGES,
    "output_messages": sc.GEN_AI_OUTPUT_MESSAGES,
    "system_instructions": sc.GEN_AI_SYSTEM_INSTRUCTIONS,
    sc.GEN_AI_INPUT_MESSAGES: sc.GEN_AI_INPUT_MESSAGES,
    sc.GEN_AI_OUTPUT_MESSAGES: sc.GEN_AI_OUTPUT_MESSAGES,
    sc.GEN_AI_SYSTEM_INSTRUCTIONS: sc.GEN_AI_SYSTEM_INSTRUCTIONS,
}


def _version() -> str | None:
    try:
        from importlib.metadata import version

        return version("spendmeter")
    except Exception:  # not installed (tests run from src/)
        return None


def _ns(moment: datetime | None) -> int | None:
    """Nanoseconds since the epoch, computed in integers so no microsecond is lost to float rounding."""
    if moment is None:
        return None
    if moment.tzinfo is None:  # the record promises aware UTC; a naive one is taken as UTC, not local
        moment = moment.replace(tzinfo=UTC)
    return ((moment - _EPOCH) // timedelta(microseconds=1)) * 1000


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


class _Activation:
    """Makes one span current for a `with` block. Attach/detach only: a few microseconds."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._token: object | None = None

    def __enter__(self) -> None:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            token, self._token = self._token, None
            otel_context.detach(token)  # type: ignore[arg-type]


class SpanSink:
    """Writes one GenAI CLIENT span per call. Its failures surface to the recorder, which contains and
    counts them (`spendmeter_internal_errors_total{kind="spans.start"|"sink.spans"|"spans.activate"}`)."""

    kind = "spans"

    def __init__(
        self, tracer_provider: TracerProvider | None = None, capture_content: bool = False, defer_start: bool = True
    ) -> None:
        # With no provider this is the global one; a ProxyTracer follows a provider set later.
        self._tracer = trace.get_tracer("spendmeter", _version(), tracer_provider=tracer_provider)
        self.capture_content = capture_content
        self.defer_start = defer_start
        self._sampler: object = _UNSEEN
        self._reads = True
        self._deferral: Deferral | None = None

    # -- start ---------------------------------------------------------------------------------------------
    def on_start(self, call: Call) -> None:
        """Open the call's span (before the SDK request is sent) and keep it on `call.span`: a deferred one
        (`sinks.deferred_span`: its ids and sampling now, the span when the call is finished) when the tracer
        is the OpenTelemetry SDK's and its sampler decides on the trace id and parent alone; else a started one."""
        if call.span is None:
            reads = self._follow_sampler()
            deferral = self._deferral
            if deferral is not None and not deferral.broken:
                call.span = deferral.defer(_span_name(call))
            else:
                call.span = self._start(call, reads)

    def _start(self, call: Call, reads: bool | None = None) -> Span:
        """A span started now; `reads`: whether the sampler may read attributes, if the caller knows."""
        if reads is None:
            reads = self._follow_sampler()
        return self._tracer.start_span(
            _span_name(call),
            kind=SpanKind.CLIENT,
            start_time=call.start_ns or _ns(call.started_at),
            # The GenAI conventions' sampling-relevant attributes, given at start to a sampler that may read
            # them; the SDK's own samplers decide on the trace id and the parent alone, so with those they are
            # set with the rest when the call is finished, off the caller's thread (the OpenTelemetry SDK
            # validates each attribute it is given: about a third of a span's start).
            attributes=_sampling_attributes(call) if reads else None,
        )

    def _follow_sampler(self) -> bool:
        """Whether the tracer's sampler may read attributes; notes, once per sampler, whether starts can be
        deferred (an SDK tracer with one of the SDK's own samplers)."""
        sampler = getattr(self._tracer, "sampler", None)  # an SDK Tracer's; a proxy or no-op tracer has none
        if sampler is not self._sampler:
            self._sampler, self._reads = sampler, reads_attributes(sampler)
            deferrable = self.defer_start and not self._reads and Deferral.possible(self._tracer)
            self._deferral = Deferral(self._tracer) if deferrable else None
        return self._reads

    def enter(self, call: Call) -> object | None:
        """Make `call.span` current (the SDK request is made under it); a token for `exit`, or None. An invalid
        span (no-op tracer) is never made current: it would hide a real parent from spans the SDK starts."""
        span = call.span
        if span is None or not span.get_span_context().is_valid:
            return None
        return otel_context.attach(trace.set_span_in_context(span))

    def exit(self, token: object | None) -> None:
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]

    def activate(self, call: Call) -> AbstractContextManager[None]:
        """`enter` / `exit` as a context manager."""
        span = call.span
        if span is None or not span.get_span_context().is_valid:
            return _NULL_CONTEXT
        return _Activation(span)

    # -- finish --------------------------------------------------------------------------------------------
    def on_call(self, call: Call) -> None:
        """Write the response, usage and cost attributes on the call's span and end it (always: a span
        whose attributes failed is still ended, so it is exported rather than leaked)."""
        span = call.span
        broken: DeferralBroken | None = None
        if type(span) is DeferredSpan:
            try:
                span = span.deferral.start(span, call.start_ns or _ns(call.started_at))
            except DeferralBroken as exc:  # exported all the same; later calls start on the caller's thread
                span, broken = exc.args[0], exc
            call.span = span
        elif span is None:  # on_start never ran (or failed): one span covers the whole call
            span = call.span = self._start(call)
        try:
            if span.is_recording():
                attributes = _request_attributes(call, sc.operation_name(call.operation))
                attributes.update(self._finish_attributes(call))
                span.set_attributes(attributes)
                if call.status != "ok":
                    span.set_status(Status(StatusCode.ERROR, call.error_type or call.status))
        finally:
            span.end(end_time=_end_ns(call))
        if broken is not None:
            raise broken  # counted by the recorder as a spans sink failure, logged once

    def _finish_attributes(self, call: Call) -> Iterator[tuple[str, Any]]:
        yield from _response_attributes(call)
        yield from _usage_attributes(call)
        yield from _cost_attributes(call)
        if self.capture_content and call.capture:
            for key, value in call.capture.items():
                attribute = _CONTENT_ATTRIBUTES.get(key)
                if attribute is not None and value is not None:
                    yield attribute, _json(value)


def _span_name(call: Call) -> str:
    operation = sc.operation_name(call.operation)
    return f"{operation} {call.request_model}" if call.request_model else operation


def _end_ns(call: Call) -> int | None:
    if call.end_ns:
        return call.end_ns
    if call.ended_at is not None:
        return _ns(call.ended_at)
    if call.duration_s > 0:
        return _ns(call.started_at + timedelta(seconds=call.duration_s))
    return None  # now


# The OpenTelemetry SDK's own samplers, as `get_description()` names them: none of them reads attributes.
_BLIND = r"(?:AlwaysOnSampler|AlwaysOffSampler|TraceIdRatioBased\{[0-9.eE+-]+\})"
_BLIND_SAMPLER = re.compile(
    rf"{_BLIND}|ParentBased\{{root:{_BLIND},remoteParentSampled:{_BLIND},remoteParentNotSampled:{_BLIND},"
    rf"localParentSampled:{_BLIND},localParentNotSampled:{_BLIND}\}}"
)


def reads_attributes(sampler: object) -> bool:
    """Whether `sampler` may decide on a span's attributes: False only for the SDK's own samplers (always on,
    always off, trace-id ratio, and parent-based compositions of those), True for anything else, an unknown
    sampler included (the attributes are then given at start, as the GenAI conventions ask)."""
    if sampler is None:
        return True
    from opentelemetry.sdk.trace import sampling

    if type(sampler) not in (sampling.StaticSampler, sampling.TraceIdRatioBased, sampling.ParentBased,
                             sampling.ParentBasedTraceIdRatio):
        return True  # a subclass may read them
    try:
        description = str(sampler.get_description())  # type: ignore[attr-defined]
    except Exception:
        return True
    return _BLIND_SAMPLER.fullmatch(description) is None


def _sampling_attributes(call: Call) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: sc.operation_name(call.operation),
        sc.GEN_AI_PROVIDER_NAME: call.provider,
    }
    if call.request_model is not None:
        attributes[sc.GEN_AI_REQUEST_MODEL] = call.request_model
    if call.server_address is not None:
        attributes[sc.SERVER_ADDRESS] = call.server_address
    if call.server_port is not None:
        attributes[sc.SERVER_PORT] = call.server_port
    return attributes


def _request_attributes(call: Call, operation: str) -> dict[str, Any]:
    openai_like = call.provider in sc.OPENAI_PROVIDERS
    who = call.who
    candidates: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: operation,
        sc.GEN_AI_PROVIDER_NAME: call.provider,
        sc.GEN_AI_REQUEST_MODEL: call.request_model,
        sc.SERVER_ADDRESS: call.server_address,
        sc.SERVER_PORT: call.server_port,
        sc.GEN_AI_REQUEST_MAX_TOKENS: call.request_max_tokens,
        (sc.OPENAI_REQUEST_SERVICE_TIER if openai_like else sc.SPENDMETER_REQUEST_SERVICE_TIER): (
            call.request_service_tier
        ),
        # As every output shows them (the user hashed when configured), never the raw attribution.
        sc.USER_ID: who.user,
        sc.SPENDMETER_FEATURE: who.feature,
        sc.GEN_AI_AGENT_NAME: who.agent,
        sc.GEN_AI_CONVERSATION_ID: who.conversation,
        sc.SPENDMETER_OPERATION: call.operation,
        sc.SPENDMETER_DEPLOYMENT: call.deployment,
    }
    attributes = {k: v for k, v in candidates.items() if v is not None}
    for name, value in who.tags:
        attributes[sc.SPENDMETER_TAG_PREFIX + name] = value
    if call.stream:
        attributes[sc.GEN_AI_REQUEST_STREAM] = True
    if call.batch:
        attributes[sc.SPENDMETER_BATCH] = True
    return attributes


def _response_attributes(call: Call) -> Iterator[tuple[str, Any]]:
    if call.response_model is not None:
        yield sc.GEN_AI_RESPONSE_MODEL, call.response_model
    if call.response_id is not None:
        yield sc.GEN_AI_RESPONSE_ID, call.response_id
    if call.finish_reasons:
        yield sc.GEN_AI_RESPONSE_FINISH_REASONS, tuple(str(r) for r in call.finish_reasons)
    if call.service_tier is not None:
        openai_like = call.provider in sc.OPENAI_PROVIDERS
        yield (
            (sc.OPENAI_RESPONSE_SERVICE_TIER if openai_like else sc.SPENDMETER_RESPONSE_SERVICE_TIER),
            call.service_tier,
        )
    yield sc.SPENDMETER_ATTEMPTS, call.attempts
    yield sc.SPENDMETER_STATUS, call.status
    if call.end_reason is not None:
        yield sc.SPENDMETER_END_REASON, call.end_reason
    if call.status != "ok":
        yield sc.ERROR_TYPE, sc.error_type(call.status, call.error_type)


def _usage_attributes(call: Call) -> Iterator[tuple[str, Any]]:
    usage = call.usage
    yield sc.SPENDMETER_USAGE_SOURCE, usage.source
    if usage.source == "missing":  # zeros would read as "this call used no tokens"
        return
    yield sc.GEN_AI_USAGE_INPUT_TOKENS, usage.prompt_total
    yield sc.GEN_AI_USAGE_OUTPUT_TOKENS, usage.output
    yield sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, usage.cache_read
    yield sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, usage.cache_write
    if usage.cache_write_1h:  # the split only matters (and is only priced apart) when 1-hour writes exist
        yield sc.SPENDMETER_CACHE_WRITE_5M_TOKENS, usage.cache_write_5m
        yield sc.SPENDMETER_CACHE_WRITE_1H_TOKENS, usage.cache_write_1h
    yield sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, usage.reasoning


def _cost_attributes(call: Call) -> Iterator[tuple[str, Any]]:
    cost = call.cost
    for tool, uses in call.tool_uses:
        yield sc.SPENDMETER_TOOL_USES_PREFIX + tool, uses
    if call.steps:
        yield sc.SPENDMETER_USAGE_STEPS, len(call.steps)
        yield sc.SPENDMETER_USAGE_STEP_MODELS, tuple(dict.fromkeys(s.model for s in call.steps))
    if isinstance(cost, Cost):
        yield sc.GEN_AI_USAGE_COST_AMOUNT, float(cost.total)  # Decimal until here, the export edge
        yield sc.GEN_AI_USAGE_COST_CURRENCY, cost.currency
        yield sc.GEN_AI_USAGE_COST_SOURCE, cost.source
        yield sc.SPENDMETER_PRICE_ENTRY, cost.price_entry
        if cost.tools:
            yield sc.SPENDMETER_COST_TOOLS_AMOUNT, float(cost.tools)
        if cost.list_total is not None:
            yield sc.SPENDMETER_COST_LIST_AMOUNT, float(cost.list_total)
    elif isinstance(cost, Unpriced):
        yield sc.SPENDMETER_UNPRICED_REASON, cost.reason
