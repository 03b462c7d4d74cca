"""Who and what a call is for: a contextvar, settable by `attribute(...)`, carried across services as baggage.

Besides user, feature, agent and conversation, any keyword is a tag: `attribute(team="payments",
tenant="acme", plan="pro")`. Tags go to the ledger (`tags` column), the spans (`spendmeter.tag.<name>`) and
the baggage (`spendmeter.tag.<name>`); they become Prometheus labels only when named in
`SPENDMETER_LABEL_TAGS` / `init(label_tags=...)`, so a tag never adds series by surprise.

`attribute` is a context manager and a decorator (sync and async functions); it nests, inner values win.
contextvars make it safe across threads (each thread starts empty) and asyncio tasks (each task copies the
context it was created in). OpenTelemetry baggage carries the same values to other services: what we set
here is also put in the current baggage, and a service that receives baggage sees it in `current()`.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import re
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
TAG_BAGGAGE_PREFIX = "spendmeter.tag."
# A tag name must be usable as a Prometheus label and a span attribute suffix, and must not shadow a label
# spendmeter already exports (or one Prometheus adds).
TAG_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
RESERVED_TAG_NAMES = frozenset({
    "user", "feature", "agent", "conversation", "provider", "model", "type", "status", "usage", "tool", "kind",
    "label", "budget", "scope", "key", "period", "level", "le", "quantile", "job", "instance", "service",
})  # fmt: skip
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
    tags = tuple(sorted((k[len(TAG_BAGGAGE_PREFIX):], str(v)) for k, v in entries.items()
                        if k.startswith(TAG_BAGGAGE_PREFIX) and v is not None
                        and check_tag_name(k[len(TAG_BAGGAGE_PREFIX):], strict=False)))
    fields = {field: _str_or_none(entries.get(key)) for field, key in BAGGAGE_KEYS.items()}
    return Attribution(**fields, tags=tags).merged(own)


def check_tag_name(name: str, *, strict: bool = True) -> bool:
    """True for a usable tag name; with `strict`, a bad one raises ValueError saying what is allowed."""
    ok = bool(TAG_NAME.fullmatch(name)) and name not in RESERVED_TAG_NAMES
    if not ok and strict:
        why = "is reserved (spendmeter or Prometheus uses that label)" if name in RESERVED_TAG_NAMES else (
            "must be lower-case letters, digits and _ (at most 40, a letter first)")
        raise ValueError(f"tag name {name!r} {why}")
    return ok


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


class attribute:
    """Attribute every LLM call made inside to a user, feature, agent and conversation.

    Usable as `with attribute(...):` and as `@attribute(...)` on sync or async functions. Any other keyword
    is a tag (`team="payments"`); a tag set to None is left as the outer block has it. A bad tag name raises
    ValueError here, where it is written.
    """

    def __init__(
        self,
        user: str | None = None,
        feature: str | None = None,
        agent: str | None = None,
        conversation: str | None = None,
        **tags: object,
    ) -> None:
        for name in tags:
            check_tag_name(name)
        cleaned = {name: _clean(value) for name, value in tags.items()}
        self._values = Attribution(
            user=_clean(user), feature=_clean(feature), agent=_clean(agent), conversation=_clean(conversation),
            tags=tuple(sorted((k, v) for k, v in cleaned.items() if v is not None)),
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
        for name, value in self._values.tags:
            ctx = baggage.set_baggage(TAG_BAGGAGE_PREFIX + name, value, context=ctx)
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
        **dict(values.tags),
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
