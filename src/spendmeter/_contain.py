"""The one containment path for spendmeter's own failures: the recorder, every sink, every background thread
and the HTTP server report here, and nowhere else.

- `with contain("sink.ledger") as ok:` around our own work catches an `Exception` (never a `BaseException`:
  cancellation and exit are not ours to swallow); `ok` is falsy afterwards if one happened.
- `report(kind)` from code that caught an error itself (a background writer that retries, a server handler).
- `recovered(kind)` when work of a kind that failed has succeeded again (a `contain` block that exits
  cleanly does this for you). The per-call hot path uses a bare `try` / `except Exception: report(kind)`
  and `ok(kind)` instead of a `contain` object: the same rule, no object per phase.

A kind is logged once per outage: the first failure with its traceback at WARNING, later ones at DEBUG, and
once more after it has recovered. Every failure is counted, in `counts()` and through the installed
pipeline's error counter (`spendmeter_internal_errors_total{kind}`). Nothing here ever raises.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("spendmeter")

_lock = threading.Lock()
_failing: set[str] = set()  # kinds in an outage: logged already, not yet recovered
_counts: dict[str, int] = {}


def ok(kind: str) -> None:
    """Work of `kind` just succeeded: for hot paths that contain with a bare `try` (cheaper than a `contain`
    object) and must still end an outage. Almost always one truth test of an empty set."""
    if _failing:
        recovered(kind)


def report(kind: str, n: int = 1, *, exc_info: bool = True) -> None:
    """Count `n` failures of `kind` (n rows lost with one batch, say) and log the first of an outage.
    Never raises."""
    try:
        with _lock:
            _counts[kind] = _counts.get(kind, 0) + n
            first = kind not in _failing
            _failing.add(kind)
        if first:
            log.warning(
                "spendmeter internal error (%s); the LLM call is unaffected (further ones logged at DEBUG)",
                kind,
                exc_info=exc_info,
            )
        else:
            log.debug("spendmeter internal error (%s)", kind, exc_info=exc_info)
        from spendmeter.runtime.pipeline import current  # a leaf module: no import cycle

        counter = current().count_error
        if counter is not None:
            counter(kind, n)
    except Exception:  # pragma: no cover - the error path itself must never raise
        pass


def recovered(kind: str) -> None:
    """Work of `kind` succeeded again: the next failure is logged as a new outage."""
    if kind in _failing:  # unlocked read first: this runs on hot paths, and is almost always False
        with _lock:
            if kind not in _failing:
                return
            _failing.discard(kind)
        log.info("spendmeter: %s works again", kind)


def counts() -> dict[str, int]:
    """Failures per kind in this process since it started (a copy)."""
    with _lock:
        return dict(_counts)


def reset() -> None:
    """Forget outages and counts (tests: each starts with nothing logged yet)."""
    with _lock:
        _failing.clear()
        _counts.clear()


def failing() -> frozenset[str]:
    """The kinds currently in an outage."""
    with _lock:
        return frozenset(_failing)


class contain:
    """Contain an `Exception` of our own: report it and carry on. A plain class, not @contextmanager:
    it runs once per phase of every call, so it must be cheap."""

    __slots__ = ("failed", "kind")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.failed = False

    def __bool__(self) -> bool:
        return not self.failed

    def __enter__(self) -> contain:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc_type is None:
            if _failing:
                recovered(self.kind)
            return False
        if not issubclass(exc_type, Exception):
            return False  # BaseException (cancellation, exit) goes on untouched
        self.failed = True
        report(self.kind)
        return True
