"""The budgets file: declared limits, validated strictly so a typo fails at init(), not at the month's end.

Every error is a `ConfigError` naming the file, the key (`budgets[1].period`) and what was expected.
Unknown keys and duplicate names are errors: a misspelt `limit_usd` silently ignored would be a budget
that never fires.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from spendmeter.budgets.periods import PERIODS, Period
from spendmeter.errors import ConfigError
from spendmeter.storage.dsn import ENV_PREFIX, parse_target

Scope = Literal["global", "user", "feature", "agent", "model"]
Action = Literal["alert", "block"]
SCOPES: tuple[Scope, ...] = ("global", "user", "feature", "agent", "model")
ACTIONS: tuple[Action, ...] = ("alert", "block")
MATCH_KEYS = ("user", "feature", "agent", "model", "provider")
DEFAULT_WARN_AT = (0.8,)
DEFAULT_GAUGE_MAX_KEYS = 1000

_TOP_KEYS = ("timezone", "store", "gauge_max_keys", "store_timeout_ms", "reservation_ttl_s", "spool", "budgets")
_BUDGET_KEYS = ("name", "scope", "match", "period", "limit_usd", "warn_at", "action", "estimate", "on_store_error")
ON_STORE_ERROR = ("open", "closed")
DEFAULT_STORE_TIMEOUT_MS = 50  # the most a budget check waits for the store on the caller's thread
DEFAULT_RESERVATION_TTL_S = 600  # a reservation whose call never finished (crashed process) stops counting
_STORE_FORMS = "memory, sqlite:///path/to/spend.db or postgresql://user@host:5432/db (or env:NAME)"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")


@dataclass(frozen=True, slots=True)
class Budget:
    name: str
    scope: Scope
    period: Period
    limit_usd: Decimal
    warn_at: tuple[float, ...] = DEFAULT_WARN_AT  # ascending ratios of the limit
    action: Action = "alert"
    match: Mapping[str, frozenset[str]] = field(default_factory=dict)  # label -> accepted values
    estimate: bool = False  # block a call whose pre-call estimate would take spend past the limit
    on_store_error: Literal["open", "closed"] = "open"  # store unreachable: admit (local view) or block

    @property
    def per_key(self) -> bool:
        """True when each user/feature/agent/model has its own spend against the limit."""
        return self.scope != "global"


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    budgets: tuple[Budget, ...]
    timezone: str = "UTC"
    # repr=False: either may hold a DSN with its password; show `spendmeter.storage.redact_dsn(store)`.
    store: str = field(default="memory", repr=False)  # as written in the file
    store_path: str | None = field(default=None, repr=False)  # SQLite file resolved, DSN, env:NAME; None: memory
    gauge_max_keys: int = DEFAULT_GAUGE_MAX_KEYS
    file: str | None = None
    store_timeout_ms: int = DEFAULT_STORE_TIMEOUT_MS
    reservation_ttl_s: int = DEFAULT_RESERVATION_TTL_S
    spool: str | None = None  # directory for spend the store could not take (resolved like a SQLite store)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def load_budgets(path: str | os.PathLike[str]) -> BudgetConfig:
    """Read and validate a budgets YAML file. Raises `ConfigError` naming file, key and reason."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read budgets file: {exc.strerror or exc}", file=str(path)) from exc
    except UnicodeDecodeError:
        raise ConfigError("not a text file (expected YAML in UTF-8)", file=str(path)) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=str(path)) from exc
    return parse_budgets(data, file=str(path), base_dir=path.parent)


def parse_budgets(data: Any, *, file: str | None = None, base_dir: Path | None = None) -> BudgetConfig:
    """Validate an already-parsed mapping (also used by tests and by `init(budgets=<dict>)`)."""

    def fail(key: str | None, message: str) -> ConfigError:
        return ConfigError(message, file=file, key=key)

    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise fail(None, f"expected a mapping with keys {', '.join(_TOP_KEYS)}, got {_kind(data)}")
    _no_unknown_keys(data, _TOP_KEYS, "", fail)

    tz_name = data.get("timezone", "UTC")
    if not isinstance(tz_name, str) or not tz_name:
        raise fail("timezone", f"expected an IANA timezone name such as UTC or Europe/Berlin, got {tz_name!r}")
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise fail("timezone", f"unknown IANA timezone {tz_name!r} (e.g. UTC, Europe/Berlin)") from exc

    store = data.get("store", "memory")
    store_path = _store_path(store, base_dir, file)

    max_keys = data.get("gauge_max_keys", DEFAULT_GAUGE_MAX_KEYS)
    if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
        raise fail("gauge_max_keys", f"expected a positive integer, got {max_keys!r}")

    timeout_ms = _int_in(data.get("store_timeout_ms", DEFAULT_STORE_TIMEOUT_MS), 1, 60_000, "store_timeout_ms", fail)
    ttl_s = _int_in(data.get("reservation_ttl_s", DEFAULT_RESERVATION_TTL_S), 10, 86_400, "reservation_ttl_s", fail)
    spool = data.get("spool")
    if spool is not None:
        if not isinstance(spool, str) or not spool.strip():
            raise fail("spool", f"expected a directory path such as /var/lib/app/spend-spool, got {spool!r}")
        spool = str((base_dir or Path(".")) / Path(spool).expanduser())
        if not os.path.isdir(spool) or not os.access(spool, os.W_OK | os.X_OK):
            raise fail("spool", f"{spool} is not a writable directory: create it (mkdir -p) or fix its permissions")

    raw = data.get("budgets", [])
    if not isinstance(raw, list):
        raise fail("budgets", f"expected a list of budgets, got {_kind(raw)}")
    budgets: list[Budget] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        budget = _parse_budget(item, f"budgets[{i}]", fail)
        if budget.name in seen:
            first = f"budgets[{seen[budget.name]}]"
            raise fail(f"budgets[{i}].name", f"duplicate budget name {budget.name!r} (also {first})")
        seen[budget.name] = i
        budgets.append(budget)
    return BudgetConfig(
        budgets=tuple(budgets),
        timezone=tz_name,
        store=store,
        store_path=store_path,
        gauge_max_keys=max_keys,
        file=file,
        store_timeout_ms=timeout_ms,
        reservation_ttl_s=ttl_s,
        spool=spool,
    )


def _parse_budget(item: Any, where: str, fail: Any) -> Budget:
    if not isinstance(item, Mapping):
        raise fail(where, f"expected a mapping with keys name, scope, period, limit_usd, got {_kind(item)}")
    _no_unknown_keys(item, _BUDGET_KEYS, where + ".", fail)
    for required in ("name", "scope", "period", "limit_usd"):
        if required not in item:
            raise fail(f"{where}.{required}", "missing (required)")

    name = item["name"]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise fail(f"{where}.name", f"expected letters, digits, '_', '.', ':' or '-' (max 100), got {name!r}")
    scope = _one_of(item["scope"], SCOPES, f"{where}.scope", fail)
    period = _one_of(item["period"], PERIODS, f"{where}.period", fail)
    action = _one_of(item.get("action", "alert"), ACTIONS, f"{where}.action", fail)
    limit = _positive_decimal(item["limit_usd"], f"{where}.limit_usd", fail)
    warn_at = _warn_levels(item.get("warn_at", list(DEFAULT_WARN_AT)), f"{where}.warn_at", fail)
    match = _match(item.get("match", {}), f"{where}.match", fail)

    estimate = item.get("estimate", False)
    if not isinstance(estimate, bool):
        raise fail(f"{where}.estimate", f"expected true or false, got {estimate!r}")
    if estimate and action != "block":
        raise fail(f"{where}.estimate", "only applies to budgets with action: block (an alert never blocks)")
    on_error = _one_of(item.get("on_store_error", "open"), ON_STORE_ERROR, f"{where}.on_store_error", fail)
    if "on_store_error" in item and action != "block":
        raise fail(f"{where}.on_store_error", "only applies to budgets with action: block (an alert never blocks)")
    return Budget(name, scope, period, limit, warn_at, action, match, estimate, on_error)


def _int_in(value: Any, low: int, high: int, key: str, fail: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise fail(key, f"expected a whole number from {low} to {high}, got {value!r}")
    return value


def _one_of(value: Any, allowed: tuple[str, ...], key: str, fail: Any) -> Any:
    if value not in allowed:
        raise fail(key, f"expected one of {', '.join(allowed)}, got {value!r}")
    return value


def _positive_decimal(value: Any, key: str, fail: Any) -> Decimal:
    # YAML gives 2.00 as the float 2.0; going through str() keeps what a human reads (no binary tail).
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise fail(key, f"expected a positive amount in USD such as 2.50, got {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise fail(key, f"expected a positive amount in USD such as 2.50, got {value!r}") from exc
    if not amount.is_finite() or amount <= 0:
        raise fail(key, f"expected a positive amount in USD such as 2.50, got {value!r}")
    if amount < _SMALLEST or amount > _LARGEST:
        # Spend is kept in integer nano-dollars: a smaller limit would round to 0 and block every call.
        raise fail(key, f"expected an amount from 0.000000001 to 1000000000000 USD, got {value!r}")
    return amount


_SMALLEST = Decimal("0.000000001")
_LARGEST = Decimal(10) ** 12


def _warn_levels(value: Any, key: str, fail: Any) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise fail(key, f"expected a list of ratios of the limit such as [0.5, 0.8], got {value!r}")
    levels: list[float] = []
    for i, level in enumerate(value):
        if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level <= 10:
            raise fail(f"{key}[{i}]", f"expected a ratio of the limit above 0 (0.8 = 80%), got {level!r}")
        levels.append(float(level))
    if len(set(levels)) != len(levels):
        raise fail(key, f"duplicate warn levels in {value!r}")
    return tuple(sorted(levels))


def _match(value: Any, key: str, fail: Any) -> dict[str, frozenset[str]]:
    if not isinstance(value, Mapping):
        raise fail(key, f"expected a mapping such as {{feature: support}}, got {_kind(value)}")
    out: dict[str, frozenset[str]] = {}
    for label, accepted in value.items():
        if label not in MATCH_KEYS:
            raise fail(f"{key}.{label}", f"unknown label; expected one of {', '.join(MATCH_KEYS)}")
        values = accepted if isinstance(accepted, list) else [accepted]
        if not values or not all(isinstance(v, str) and v for v in values):
            raise fail(f"{key}.{label}", f"expected a non-empty string or list of strings, got {accepted!r}")
        out[label] = frozenset(values)
    return out


def _store_path(store: Any, base_dir: Path | None, file: str | None) -> str | None:
    """None for memory; the SQLite file (resolved against the budgets file's directory, so the result does
    not depend on the cwd); the PostgreSQL DSN; or `env:NAME` as written, read when the store opens (so
    `spendmeter budgets check` works where the secret is not set)."""
    if store == "memory":
        return None
    if isinstance(store, str) and store.strip().startswith(ENV_PREFIX):
        return store.strip()
    target = parse_target(store, key="store", file=file, base_dir=base_dir, allow_path=False, expected=_STORE_FORMS)
    return target.path if target.kind == "sqlite" else target.dsn


def _no_unknown_keys(data: Mapping[Any, Any], allowed: tuple[str, ...], prefix: str, fail: Any) -> None:
    for k in data:
        if k not in allowed:
            raise fail(f"{prefix}{k}", f"unknown key; expected one of {', '.join(allowed)}")


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__} ({value!r:.40})"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (PyYAML keeps the last one silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str | int | float | bool | None):
            continue  # an unhashable key: construct_mapping reports it properly
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
