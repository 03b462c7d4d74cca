"""Who and what a call is for: a contextvar, settable by `attribute(...)`, carried across services as baggage.

`attribute` is a context manager and a decorator (sync and async functions); it nests, inner values win.
contextvars make it safe across threads (each thread starts empty) and asyncio tasks (each task copies the
context it was created in). OpenTelemetry baggage carries the same values to other services: what we set
here is also put in the current baggage, and a service that receives baggage sees it in `current()`.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from opentelemetry import baggage
from opentelemetry import context as otel_context

from spendmeter.call import Attribution

F = TypeVar("F", bound=Callable[..., Any])

# Baggage keys, so that a downstream service instrumented with spendmeter attributes its calls the same way.
BAGGAGE_KEYS = {
    "user": "spendmeter.user",
    "feature": "spendmeter.feature",
    "agent": "spendmeter.agent",
    "conversation": "spendmeter.conversation",
}
_EMPTY = Attribution()
_current: contextvars.ContextVar[Attribution] = contextvars.ContextVar("spendmeter_attribution", default=_EMPTY)


def current() -> Attribution:
    """The attribution in force here: our own contextvar, with incoming baggage filling what it leaves unset."""
    own = _current.get()
    if own.user is not None and own.feature is not None and own.agent is not None:
        return own
    entries = baggage.get_all()
    if not entries:
        return own
    from_baggage = Attribution(**{field: _str_or_none(entries.get(key)) for field, key in BAGGAGE_KEYS.items()})
    return from_baggage.merged(own)


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


class attribute:
    """Attribute every LLM call made inside to a user, feature, agent and conversation.

    Usable as `with attribute(...):` and as `@attribute(...)` on sync or async functions.
    """

    def __init__(
        self,
        user: str | None = None,
        feature: str | None = None,
        agent: str | None = None,
        conversation: str | None = None,
    ) -> None:
        self._values = Attribution(
            user=_clean(user), feature=_clean(feature), agent=_clean(agent), conversation=_clean(conversation)
        )
        self._tokens: list[tuple[contextvars.Token[Attribution], object]] = []

    def __enter__(self) -> Attribution:
        merged = _current.get().merged(self._values)
        token = _current.set(merged)
        ctx = otel_context.get_current()
        for field, key in BAGGAGE_KEYS.items():
            value = getattr(self._values, field)
            if value is not None:
                ctx = baggage.set_baggage(key, value, context=ctx)
        otel_token = otel_context.attach(ctx)
        self._tokens.append((token, otel_token))
        return merged

    def __exit__(self, *exc: object) -> None:
        token, otel_token = self._tokens.pop()
        otel_context.detach(otel_token)  # type: ignore[arg-type]
        _current.reset(token)

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with attribute(**_as_kwargs(self._values)):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with attribute(**_as_kwargs(self._values)):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def _as_kwargs(values: Attribution) -> dict[str, str | None]:
    return {
        "user": values.user,
        "feature": values.feature,
        "agent": values.agent,
        "conversation": values.conversation,
    }


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text or None


@contextmanager
def cleared() -> Iterator[None]:
    """Run a block with no attribution at all (tests, and the demo's background work)."""
    token = _current.set(_EMPTY)
    try:
        yield
    finally:
        _current.reset(token)
