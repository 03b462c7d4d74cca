"""Reading fields from SDK objects and plain dicts alike (raw responses are parsed JSON)."""

from __future__ import annotations

from typing import Any

_MISSING = object()
_USE_GETATTR: dict[tuple[type, str], bool] = {}


def get(obj: Any, name: str) -> Any:
    """`obj[name]` for a dict, else the attribute; None when absent.

    The per-chunk path of every stream, so SDK (pydantic) objects are read from their `__dict__` and extra
    fields first: `getattr` of a name the model does not declare goes through pydantic's `__getattr__` and an
    exception, several times slower than the lookup itself. Properties, private attributes and non-pydantic
    objects still go through `getattr`."""
    if obj is None:
        return None
    if type(obj) is dict:
        return obj.get(name)
    fields = getattr(obj, "__dict__", None)
    if fields is not None:
        value = fields.get(name, _MISSING)
        if value is not _MISSING:
            return value
        extra = getattr(obj, "__pydantic_extra__", None)
        if extra and name in extra:
            return extra[name]
        if not _use_getattr(type(obj), name):
            return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


# A stream chunk's fields read straight from its __dict__: only for pydantic classes that declare all of them
# (so a missing key means absent, never a property or an extra). Decided once per class.
_CHUNK_FIELDS = ("id", "model", "choices", "usage", "service_tier")
_FAST_TYPES: dict[type, bool] = {}


def fast_fields(chunk: Any) -> dict[str, Any] | None:
    """The chunk's `__dict__` when its class is a pydantic model declaring every chat-chunk field, else None
    (read it through `get`)."""
    cls = type(chunk)
    fast = _FAST_TYPES.get(cls)
    if fast is None:
        declared = getattr(cls, "model_fields", None)
        fast = isinstance(declared, dict) and all(name in declared for name in _CHUNK_FIELDS)
        if len(_FAST_TYPES) < 1000:
            _FAST_TYPES[cls] = fast
    return chunk.__dict__ if fast else None


def _use_getattr(cls: type, name: str) -> bool:
    """False only when `name` cannot be anything but absent: a pydantic model with no such property or private
    attribute (its `__getattr__` would raise). Cached per class and name."""
    key = (cls, name)
    found = _USE_GETATTR.get(key)
    if found is None:
        private = getattr(cls, "__private_attributes__", None)
        pydantic = isinstance(private, dict) and hasattr(cls, "model_fields")
        found = not pydantic or name in private or hasattr(cls, name)
        if len(_USE_GETATTR) < 10_000:  # bounded: classes and names come from SDKs, but never trust that
            _USE_GETATTR[key] = found
    return found


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
        value = kwargs.get(name)  # a "not given" sentinel is no int
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
