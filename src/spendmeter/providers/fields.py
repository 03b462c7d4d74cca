"""Reading fields from SDK objects and plain dicts alike (raw responses are parsed JSON)."""

from __future__ import annotations

from typing import Any


def get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def path(obj: Any, *names: str) -> Any:
    for name in names:
        obj = get(obj, name)
    return obj


def as_int(value: Any) -> int | None:
    """A count as the provider meant it: ints as they are (negatives too: `sanitize` flags them), whole
    floats (`5.0`) and digit strings (`"10"`) as ints; anything else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def get_int(obj: Any, name: str) -> int:
    value = as_int(get(obj, name))
    return 0 if value is None else value


def given(value: Any) -> Any:
    """None for the SDKs' "not given" sentinels (`omit`, `NOT_GIVEN`), else the value."""
    if value is None:
        return None
    if type(value).__name__ in ("Omit", "NotGiven"):
        return None
    return value


def max_tokens_of(kwargs: dict[str, Any]) -> int | None:
    """The request's output-token ceiling, whichever name the API gives it."""
    for name in ("max_completion_tokens", "max_output_tokens", "max_tokens"):
        value = given(kwargs.get(name))
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
