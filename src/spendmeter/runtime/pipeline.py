"""The pipeline: everything a finished call goes through, built by `init()` and installed with one assignment.

A `Pipeline` is immutable. `init()` builds a new one and `install()` swaps it in atomically, so a call in
flight finishes into whichever pipeline is current when it finishes, exactly once. Nothing else in spendmeter
holds wiring: the recorder, the hooks and the containment path read `current()`.

This module is a leaf (it imports only the record, the adapters' request options and the label policy), so
every layer can read it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from spendmeter.call import Call, Cost, Unpriced
from spendmeter.providers.base import RequestOptions
from spendmeter.telemetry.labels import LabelPolicy

DEFAULT_USAGE_HOSTS = ("api.openai.com", ".openai.azure.com")


class Sink(Protocol):
    def on_call(self, call: Call) -> None:
        """Take one finished call (priced, labelled). Called once per call, from the thread that finished it."""


class SpanObserver(Protocol):
    """Opens a call's span when it starts and makes it current while the SDK request is made."""

    def on_start(self, call: Call) -> None: ...

    def enter(self, call: Call) -> Any:
        """Make the call's span current; returns what `exit` needs (None: nothing was changed)."""

    def exit(self, token: Any) -> None: ...


class BudgetGuard(Protocol):
    """Decides before the request is sent: raises `BudgetExceeded` when a blocking budget has no room; also
    what `/api/budgets` and the budget gauges read."""

    def check(self, call: Call) -> None: ...

    def status(self) -> list[Any]: ...

    def refresh_gauges(self) -> None: ...


Pricer = Callable[[Call], Cost | Unpriced]


@dataclass(frozen=True, slots=True)
class Pipeline:
    pricer: Pricer | None = None
    guard: BudgetGuard | None = None
    labels: LabelPolicy = field(default_factory=LabelPolicy)
    sinks: tuple[Sink, ...] = ()  # built by init(): metrics, spans, OTLP, budget spend, ledger
    extra_sinks: tuple[Sink, ...] = ()  # added by add_sink(): carried into every later pipeline
    spans: SpanObserver | None = None
    count_error: Callable[[str, int], None] | None = None  # spendmeter_internal_errors_total{kind}
    usage_hosts: tuple[str, ...] = DEFAULT_USAGE_HOSTS
    capture_content: bool = False
    providers: Mapping[str, str] = field(default_factory=dict)  # the user's endpoint -> provider mapping
    runtime: Any = None  # what init() started (servers, stores, providers), for shutdown()
    options: RequestOptions = field(init=False)
    all_sinks: tuple[Sink, ...] = field(init=False)

    def __post_init__(self) -> None:
        # Derived once per pipeline rather than per call: what adapters see, and the whole fan-out list.
        options = RequestOptions(
            usage_hosts=self.usage_hosts, capture_content=self.capture_content, providers=self.providers
        )
        object.__setattr__(self, "options", options)
        object.__setattr__(self, "all_sinks", self.sinks + self.extra_sinks)

    def replace(self, **changes: Any) -> Pipeline:
        return dataclasses.replace(self, **changes)


_lock = threading.Lock()
_current = Pipeline()


def current() -> Pipeline:
    return _current


def install(pipeline: Pipeline) -> Pipeline:
    """Make `pipeline` the current one; returns the one it replaced."""
    global _current
    with _lock:
        previous, _current = _current, pipeline
    return previous


def update(change: Callable[[Pipeline], Pipeline]) -> Pipeline:
    """Replace the current pipeline with `change(current)` atomically; returns the one it replaced."""
    global _current
    with _lock:
        previous, _current = _current, change(_current)
    return previous
