"""A span whose identity is fixed when the call starts and which is started, with that identity, when the call
is finished (off the caller's thread).

On the caller's thread, `Deferral.defer()` picks the span's ids with the tracer's own id generator, asks the
tracer's own sampler (one the spans sink knows decides on the trace id and the parent alone, so asking again
later gives the same answer), and returns a `DeferredSpan`: a non-recording span with that context, which is
made current while the SDK sends the request. Spans started under it (the Anthropic SDK's, an HTTP client's)
and the `traceparent` header carry its ids. About a quarter of what `Tracer.start_span` costs there.

When the call is finished, `Deferral.start()` starts the real span through the public `Tracer.start_span`,
with the start time and parent context noted at the start, while the tracer's id generator hands out the
noted ids. That id generator is the one private-ish step: the OpenTelemetry SDK's `Tracer` reads its
`id_generator` attribute on each start, and we wrap it (`PresetIds`, which delegates whenever no ids are
preset, so every other span of this tracer is untouched). If an SDK stops honouring it, the started span's
ids differ from the noted ones: `start()` says so (`DeferralBroken`; the spans sink completes the span first),
and the spans sink stops deferring. `tests/unit/test_deferred_span.py` fails first.

This module imports only OpenTelemetry.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags

_WRAPPING = threading.Lock()
_SAMPLED = TraceFlags.SAMPLED
_RANDOM = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)  # W3C trace context level 2; older APIs lack it
_FLAGS = {bits: TraceFlags(bits) for bits in (0, _SAMPLED, _RANDOM, _SAMPLED | _RANDOM)}


class DeferralBroken(RuntimeError):
    """The tracer started a deferred span with ids other than the noted ones (the SDK changed), or did not
    record a span its sampler had kept at the call's start."""


class DeferredSpan(NonRecordingSpan):
    """The call's span until it is finished: a context to make current, and what starting it later needs."""

    def __init__(self, context: SpanContext, name: str, parent: Context, deferral: Deferral) -> None:
        super().__init__(context)
        self.name = name
        self.parent = parent
        self.deferral = deferral


class PresetIds:
    """An id generator that hands out preset ids on the thread that preset them, and otherwise is the tracer's
    own (`wrapped`)."""

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped
        self._preset = threading.local()

    def generate_trace_id(self) -> int:
        ids = getattr(self._preset, "ids", None)
        return self.wrapped.generate_trace_id() if ids is None else ids[0]

    def generate_span_id(self) -> int:
        ids = getattr(self._preset, "ids", None)
        return self.wrapped.generate_span_id() if ids is None else ids[1]

    def is_trace_id_random(self) -> bool:
        return bool(getattr(self.wrapped, "is_trace_id_random", lambda: False)())

    def preset(self, ids: tuple[int, int] | None) -> None:
        self._preset.ids = ids


class Deferral:
    """Deferred span starts for one OpenTelemetry SDK tracer."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        with _WRAPPING:  # one wrapper per tracer, however many sinks or threads get here first
            ids = tracer.id_generator
            if not isinstance(ids, PresetIds):
                ids = tracer.id_generator = PresetIds(ids)
        self.ids = ids
        self.sampler = tracer.sampler
        self.root_random = _RANDOM if ids.is_trace_id_random() else 0  # a generator's own, fixed
        self.broken = False  # set once a start did not use the noted ids: the spans sink stops deferring

    @staticmethod
    def possible(tracer: object) -> bool:
        """Whether `tracer` is the OpenTelemetry SDK's own (the only one whose start we know how to defer)."""
        try:
            from opentelemetry.sdk.trace import Tracer
        except ImportError:
            return False
        return type(tracer) is Tracer and hasattr(tracer, "id_generator") and hasattr(tracer, "sampler")

    def defer(self, name: str) -> DeferredSpan:
        """On the caller's thread: the span's ids and sampling decision, under the current context."""
        parent = otel_context.get_current()
        parent_span = trace.get_current_span(parent).get_span_context()
        ids = self.ids.wrapped
        if parent_span.is_valid:
            trace_id = parent_span.trace_id
            random = parent_span.trace_flags & _RANDOM
        else:
            trace_id = ids.generate_trace_id()
            random = self.root_random
        decision = self.sampler.should_sample(parent, trace_id, name, SpanKind.CLIENT, None, ())
        flags = _FLAGS[(_SAMPLED if decision.decision.is_sampled() else 0) | random]
        context = SpanContext(trace_id, ids.generate_span_id(), False, flags, decision.trace_state)
        return DeferredSpan(context, name, parent, self)

    def start(self, deferred: DeferredSpan, start_ns: int | None) -> Span:
        """When the call is finished: the real span, with the deferred one's ids (a non-recording span when
        the sampler dropped it). Raises `DeferralBroken` if the tracer did not use them, or did not record a
        span its sampler had kept at the start."""
        noted = deferred.get_span_context()
        if not noted.trace_flags.sampled:
            return deferred  # dropped at the start: nothing to record, as `start_span` would have returned
        self.ids.preset((noted.trace_id, noted.span_id))
        try:
            span = self.tracer.start_span(
                deferred.name, context=deferred.parent, kind=SpanKind.CLIENT, start_time=start_ns
            )
        finally:
            self.ids.preset(None)
        started = span.get_span_context()
        if (started.trace_id, started.span_id) != (noted.trace_id, noted.span_id) or not span.is_recording():
            self.broken = True
            raise DeferralBroken(span, "the tracer did not start the span the call's children point at")
        return span
