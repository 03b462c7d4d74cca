"""The only fan-out: start a Call, finish it exactly once, price it, hand it to every sink.

Patched SDK methods talk to the recorder and to nothing else. `start()` snapshots attribution and may raise
`BudgetExceeded` (on purpose, before any request is sent); every other failure inside spendmeter is caught
by `guard()`, logged once per kind, counted, and never reaches the caller.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from spendmeter import attribution
from spendmeter.call import Call, Cost, EndReason, Unpriced, Usage
from spendmeter.sinks import Sink

log = logging.getLogger("spendmeter")

# The call whose SDK request is being made right now in this context: lets the per-attempt hook count retries.
current_call: contextvars.ContextVar[Call | None] = contextvars.ContextVar("spendmeter_call", default=None)


class _Guard:
    """`with recorder.guard(kind) as ok:` contains an Exception of ours; `ok` is falsy afterwards if one happened.

    A plain class rather than @contextmanager: it runs ~20 times per call, so it must be cheap.
    """

    __slots__ = ("kind", "recorder", "value")

    def __init__(self, recorder: Recorder, kind: str) -> None:
        self.recorder = recorder
        self.kind = kind
        self.value = True

    def __bool__(self) -> bool:
        return self.value

    def __enter__(self) -> _Guard:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc_type is None or not issubclass(exc_type, Exception):
            return False  # BaseException (cancellation, exit) is not ours to swallow
        self.value = False
        self.recorder.internal_error(self.kind)
        return True


class _Active:
    """While the SDK request runs: our span is current, and per-attempt hooks can find the call."""

    __slots__ = ("call", "manager", "recorder", "token")

    def __init__(self, recorder: Recorder, call: Call) -> None:
        self.recorder = recorder
        self.call = call
        self.manager: Any = None

    def __enter__(self) -> None:
        self.token = current_call.set(self.call)
        rec = self.recorder
        if rec.span_sink is not None and self.call.span is not None:
            with rec.guard("spans.activate"):
                manager = rec.span_sink.activate(self.call)
                manager.__enter__()
                self.manager = manager

    def __exit__(self, *exc: object) -> None:
        if self.manager is not None:
            with self.recorder.guard("spans.activate"):
                self.manager.__exit__(None, None, None)
        current_call.reset(self.token)


class Recorder:
    def __init__(self) -> None:
        self.sinks: list[Sink] = []
        self.span_sink: Any = None  # has on_start(call) and activate(call); optional
        self.pricer: Callable[[Call], Cost | Unpriced] | None = None
        self.budgets: Any = None  # has check(call); optional
        self.on_internal_error: Callable[[str], None] | None = None
        self.usage_hosts: tuple[str, ...] = ("api.openai.com", ".openai.azure.com")
        self.capture_content = False
        self._abandoned: queue.SimpleQueue[Call] = queue.SimpleQueue()
        self._logged_kinds: set[str] = set()
        self._lock = threading.Lock()
        self.internal_errors: dict[str, int] = {}

    # -- errors -------------------------------------------------------------------------------------
    def guard(self, kind: str) -> _Guard:
        """Contain a failure of our own: log once per kind, count it, carry on."""
        return _Guard(self, kind)

    def internal_error(self, kind: str) -> None:
        try:
            with self._lock:
                self.internal_errors[kind] = self.internal_errors.get(kind, 0) + 1
                first = kind not in self._logged_kinds
                self._logged_kinds.add(kind)
            if first:
                log.warning("spendmeter internal error (%s); the LLM call is unaffected", kind, exc_info=True)
            if self.on_internal_error is not None:
                self.on_internal_error(kind)
        except Exception:  # pragma: no cover - the error path itself must never raise
            pass

    # -- the life of a call ----------------------------------------------------------------------------
    def start(
        self,
        provider: str,
        operation: str,
        request_model: str | None,
        *,
        stream: bool = False,
        batch: bool = False,
        request_user: str | None = None,
        request_service_tier: str | None = None,
        request_max_tokens: int | None = None,
        deployment: str | None = None,
        capture: dict[str, Any] | None = None,
        check_budget: bool = True,
    ) -> Call | None:
        """A new Call, or None when we failed internally (the caller then makes the bare SDK call).

        Raises `BudgetExceeded` when a blocking budget is exhausted: the call is recorded as blocked first.
        """
        call = None
        with self.guard("recorder.start"):
            who = attribution.current()
            if who.user is None and request_user:
                who = attribution.Attribution(request_user, who.feature, who.agent, who.conversation)
            call = Call(
                provider=provider,
                operation=operation,
                request_model=request_model,
                attribution=who,
                stream=stream,
                batch=batch,
                started_at=datetime.now(UTC),
                start_monotonic=time.perf_counter(),
                request_service_tier=request_service_tier,
                request_max_tokens=request_max_tokens,
                deployment=deployment,
                capture=capture if self.capture_content else None,
            )
        if call is None:
            return None
        if check_budget and self.budgets is not None:
            self._check_budget(call)  # may raise BudgetExceeded: the one exception we raise on purpose
        if self.span_sink is not None:
            with self.guard("spans.start"):
                self.span_sink.on_start(call)
        return call

    def _check_budget(self, call: Call) -> None:
        from spendmeter.budgets.engine import BudgetExceeded  # only reached when budgets are configured

        blocked: BudgetExceeded | None = None
        with self.guard("budgets.check"):  # a failing spend store fails open: the call goes through
            try:
                self.budgets.check(call)
            except BudgetExceeded as exc:
                blocked = exc
        if blocked is not None:
            call.status = "blocked"
            call.error_type = type(blocked).__name__
            self.finish(call, end_reason="blocked")
            raise blocked

    def active(self, call: Call) -> _Active:
        """While the SDK request runs: our span is current, and per-attempt hooks can find the call."""
        return _Active(self, call)

    def fail(self, call: Call, exc: BaseException) -> None:
        """The SDK raised: record the call as an error, keeping any usage the provider billed."""
        with self.guard("recorder.fail"):
            call.status = "error"
            call.error_type = _error_type(exc)
            self.finish(call, end_reason="error")

    def finish(self, call: Call, *, end_reason: EndReason = "completed") -> None:
        """Finish the call exactly once and fan it out. Never raises."""
        if not call.once.acquire(blocking=False):
            return  # someone already finished this call
        with self.guard("recorder.finish"):
            self._complete(call, end_reason)
            self._fan_out(call)
        self.drain()

    def abandoned(self, call: Call) -> None:
        """From a GC finalizer: queue only. prometheus_client's locks are not reentrant and GC can run anywhere."""
        self._abandoned.put(call)

    def drain(self) -> None:
        """Finish calls whose streams were garbage-collected unfinished (on the next finish and at scrape)."""
        while True:
            try:
                call = self._abandoned.get_nowait()
            except queue.Empty:
                return
            if call.once.acquire(blocking=False):
                with self.guard("recorder.finish"):
                    self._complete(call, "abandoned")
                    self._fan_out(call)

    def _complete(self, call: Call, end_reason: EndReason) -> None:
        call.end_reason = end_reason
        if call.ended_at is None:
            call.duration_s = max(0.0, time.perf_counter() - call.start_monotonic)
            call.ended_at = datetime.now(UTC)
        # No usage, nothing to price: cost stays None (the usage="missing" series says so), never $0.
        if call.usage.source != "missing" and call.cost is None and self.pricer is not None:
            with self.guard("pricing"):
                call.cost = self.pricer(call)

    def _fan_out(self, call: Call) -> None:
        for sink in self.sinks:
            with self.guard(f"sink.{type(sink).__name__}"):
                sink.on_call(call)

    def record_usage(self, call: Call, usage: Usage) -> None:
        call.usage = usage


def _error_type(exc: BaseException) -> str:
    return type(exc).__name__


RECORDER = Recorder()
