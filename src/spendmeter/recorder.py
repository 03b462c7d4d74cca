"""The only writer of `Call` and the only fan-out: start a call from request facts, finish it exactly once
from response facts, price it, label it, hand it to every sink of the current pipeline.

Hooks talk to the recorder and to nothing else. `start()` snapshots attribution and may raise
`BudgetExceeded` (on purpose, before any request is sent); every other failure inside spendmeter is contained
(`spendmeter._contain`), and the call goes on.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from spendmeter import attribution
from spendmeter._contain import contain, ok, report
from spendmeter.call import Attribution, Call, EndReason, Usage
from spendmeter.errors import BudgetExceeded
from spendmeter.providers import endpoints, sanitize
from spendmeter.providers.base import RequestFacts, RequestOptions, ResponseFacts
from spendmeter.runtime.finisher import FINISHER
from spendmeter.runtime.pipeline import Pipeline, current

# The call whose SDK request is being made right now in this context: lets the per-attempt hook count retries.
current_call: contextvars.ContextVar[Call | None] = contextvars.ContextVar("spendmeter_call", default=None)

_sink_kinds: dict[type, str] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NOT_YET = _EPOCH  # `started_at` until the recorder finishes the call (from `start_ns`, off the caller's thread)


def options() -> RequestOptions:
    """What adapters need to know about the request side, from the current pipeline."""
    return current().options


# -- start ---------------------------------------------------------------------------------------------------
def start(facts: RequestFacts, *, check_budget: bool = True) -> Call | None:
    """A new Call, or None when we failed internally (the caller then makes the bare SDK call).

    Raises `BudgetExceeded` when a blocking budget is exhausted: the call is recorded as blocked first.
    The caller's thread does only what must happen before the request: the attribution snapshot, the budget
    check and the span start (so the SDK's own spans nest under ours). A bare `try` per phase, no object.
    """
    p = current()
    try:
        who = attribution.current()
        if who.user is None and facts.user:
            who = Attribution(facts.user, who.feature, who.agent, who.conversation)
        call = Call(
            provider=facts.provider,
            operation=facts.operation,
            request_model=facts.model,
            attribution=who,
            stream=facts.stream,
            batch=facts.batch,
            started_at=_NOT_YET,
            start_monotonic=time.perf_counter(),
            start_ns=time.time_ns(),
            request_service_tier=facts.service_tier,
            request_max_tokens=facts.max_tokens,
            deployment=facts.deployment,
            server_address=facts.server_address,
            server_port=facts.server_port,
            capture=facts.capture if p.capture_content else None,
        )
        if p.guard is not None:  # budget keys are the identity; otherwise it is computed off this thread
            call.identity = p.labels.identity(who)
        ok("recorder.start")
    except Exception:
        report("recorder.start")
        return None
    if check_budget and p.guard is not None:
        _check_budget(p, call)  # may raise BudgetExceeded: the one exception we raise on purpose
    if p.spans is not None:
        try:
            p.spans.on_start(call)
            ok("spans.start")
        except Exception:
            report("spans.start")
    return call


def _check_budget(p: Pipeline, call: Call) -> None:
    blocked: BudgetExceeded | None = None
    FINISHER.flush()  # a budget decides on settled spend: calls finished before this one count first
    with contain("budgets.check"):  # a failing spend store fails open: the call goes through
        try:
            p.guard.check(call)  # type: ignore[union-attr]
        except BudgetExceeded as exc:
            blocked = exc
    if blocked is not None:
        call.status = "blocked"
        call.error_type = type(blocked).__name__
        finish(call, end_reason="blocked")
        raise blocked


class active:
    """While the SDK request runs: our span is current, and per-attempt hooks can find the call."""

    __slots__ = ("call", "span_token", "spans", "token")

    def __init__(self, call: Call) -> None:
        self.call = call
        self.spans = current().spans
        self.span_token: Any = None

    def __enter__(self) -> None:
        self.token = current_call.set(self.call)
        if self.spans is not None and self.call.span is not None:
            try:
                self.span_token = self.spans.enter(self.call)
            except Exception:
                report("spans.activate")

    def __exit__(self, *exc: object) -> None:
        if self.span_token is not None:
            try:
                self.spans.exit(self.span_token)  # type: ignore[union-attr]
            except Exception:
                report("spans.activate")
        current_call.reset(self.token)


# -- finish --------------------------------------------------------------------------------------------------
def fail(call: Call, exc: BaseException, facts: ResponseFacts | None = None) -> None:
    """The SDK raised: record the call as an error, keeping any usage the provider billed (`facts`)."""
    finish(call, facts, end_reason="error", error=exc)


def finish(
    call: Call,
    facts: ResponseFacts | None = None,
    *,
    end_reason: EndReason = "completed",
    error: BaseException | None = None,
) -> None:
    """Finish the call exactly once: note when it ended, then queue the rest (apply the response facts, price,
    label, fan out) for the finisher thread (`runtime.finisher`). Never raises."""
    _end(call, facts, end_reason, error)


def finish_reading(
    call: Call,
    read: Callable[[Any], ResponseFacts],
    obj: Any,
    *,
    end_reason: EndReason = "completed",
    error: BaseException | None = None,
) -> None:
    """Like `finish`, with the facts still to be read: `read(obj)` runs on the finisher thread (an adapter
    whose `read_later` says the SDK's object may be read after the caller has it)."""
    _end(call, (read, obj), end_reason, error)


def _end(call: Call, facts: Any, end_reason: EndReason, error: BaseException | None) -> None:
    if not call.once.acquire(blocking=False):
        return  # someone already finished this call: a late error changes nothing
    if error is not None:
        call.status = "error"
        call.error_type = type(error).__name__
    if call.ended_at is None:
        call.duration_s = max(0.0, time.perf_counter() - call.start_monotonic)
        call.end_ns = time.time_ns()
    FINISHER.submit((call, facts, end_reason))


def abandoned(call: Call, facts: ResponseFacts | None, read: Callable[[Any], ResponseFacts] | None = None) -> None:
    """From a GC finalizer: a bare deque append (no lock, so safe while GC interrupts one of ours); the call is
    finished with the next batch, or by the next reader's flush. With `read`, the facts are `read(facts)`,
    read on the finisher thread."""
    FINISHER.enqueue_quietly((call, facts if read is None else (read, facts), None))


def drain() -> None:
    """Finish every call queued so far, on this thread (readers call this before they read)."""
    FINISHER.flush()


def _process(item: tuple[Call, Any, EndReason | None]) -> None:
    call, facts, end_reason = item
    if type(facts) is tuple:  # (read, obj): the response's facts, read here rather than on the caller's thread
        read, obj = facts
        facts = None
        with contain("hook.observe"):
            facts = read(obj)
    if end_reason is None:  # abandoned: its latch is still free unless the stream finished after all
        if not call.once.acquire(blocking=False):
            return
        end_reason = "abandoned"
        if call.ended_at is None:
            call.duration_s = max(0.0, time.perf_counter() - call.start_monotonic)
            call.end_ns = time.time_ns()
    if call.start_ns:
        call.started_at = _EPOCH + timedelta(microseconds=call.start_ns // 1000)
    if call.ended_at is None and call.end_ns:
        call.ended_at = _EPOCH + timedelta(microseconds=call.end_ns // 1000)
    _finish(call, facts, end_reason)


def _finish(call: Call, facts: ResponseFacts | None, end_reason: EndReason) -> None:
    p = current()
    with contain("recorder.finish"):
        if facts is not None:
            apply_facts(call, facts)
        call.end_reason = end_reason
        # No usage, nothing to price: cost stays None (the usage="missing" series says so), never $0.
        if call.usage.source != "missing" and call.cost is None and p.pricer is not None:
            with contain("pricing"):
                call.cost = p.pricer(call)
        if call.identity is None:
            call.identity = p.labels.identity(call.attribution)
        call.labels = p.labels.labels(call)
        if call.steps:  # steps run by other models have series of their own, bounded by the same policy
            others = {s.model for s in call.steps} - {call.model}
            if others:
                call.model_labels = {m: p.labels.labels(call, model=m) for m in sorted(others)}
        if (call.stream and call.usage.source == "missing" and end_reason == "completed" and call.status == "ok"
                and call.operation in ("chat", "text_completion")):
            with contain("recorder.usage_hint"):
                endpoints.warn_stream_usage_missing(call.server_address)
    for sink in p.all_sinks:
        with contain(_sink_kind(sink)):
            sink.on_call(call)


def apply_facts(call: Call, facts: ResponseFacts) -> None:
    """Write what the response said onto the call (the recorder is the only writer of `Call`), made storable
    first: a malformed field is corrected and flagged, never a dropped call (`providers.sanitize`)."""
    facts = sanitize.facts(facts)
    call.usage = facts.usage
    call.steps = facts.steps
    call.tool_uses = facts.tools
    call.billed_cost, call.billed_cost_source = facts.billed_cost, facts.billed_cost_source
    call.response_model = facts.model or call.response_model
    call.response_id = facts.response_id or call.response_id
    call.service_tier = facts.service_tier or call.service_tier
    if facts.finish_reasons:
        call.finish_reasons = facts.finish_reasons
    if facts.error_type is not None and call.status == "ok":
        call.status = "error"
        call.error_type = facts.error_type


def _sink_kind(sink: object) -> str:
    kind = _sink_kinds.get(type(sink))
    if kind is None:
        kind = _sink_kinds[type(sink)] = f"sink.{getattr(sink, 'kind', type(sink).__name__)}"
    return kind


def missing() -> ResponseFacts:
    """Facts of a call whose usage could not be had."""
    return ResponseFacts(usage=Usage(source="missing"))


FINISHER.process = _process
