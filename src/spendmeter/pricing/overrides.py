"""Override files: our shipped corrections to genai-prices, and the user's own prices and discounts.

Both use one format (TOML, or YAML for user files), documented in docs/pricing.md. Validation is strict:
every error names the file, the key and what was expected, because a silently ignored typo in a price file
means wrong money on a dashboard.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import os
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from spendmeter.errors import ConfigError

RATE_CLASSES = ("input", "cache_read", "cache_write", "cache_write_1h", "output")
TIER_NAMES = ("priority", "flex")


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per 1M tokens for each of our disjoint classes. `output=None`: output tokens have no price."""

    input: Decimal
    cache_read: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    output: Decimal | None

    def scaled(self, factor: Decimal) -> Rates:
        return Rates(
            self.input * factor,
            self.cache_read * factor,
            self.cache_write_5m * factor,
            self.cache_write_1h * factor,
            None if self.output is None else self.output * factor,
        )


@dataclass(frozen=True, slots=True)
class OverrideEntry:
    name: str
    key: str  # where it sits in its file, e.g. "models.my-ft" or "models.gpt-5[1]"
    provider: str | None = None
    aliases: tuple[str, ...] = ()
    match: tuple[str, ...] = ()
    rates: Rates | None = None
    long_context: tuple[int, Rates] | None = None  # (prompt tokens above which, rates for the whole call)
    tiers: dict[str, Rates] = field(default_factory=dict)
    batch: Rates | None = None
    since: date | None = None
    until: date | None = None
    source: str | None = None
    checked: date | None = None

    def active(self, day: date) -> bool:
        return (self.since is None or self.since <= day) and (self.until is None or day < self.until)

    def applies_to(self, provider: str, family: str) -> bool:
        return self.provider is None or self.provider in (provider, family)


@dataclass(frozen=True, slots=True)
class BatchRule:
    multiplier: Decimal
    source: str | None = None
    checked: date | None = None


@dataclass(frozen=True, slots=True)
class ToolRate:
    """USD per 1,000 uses of one server-side tool at one provider."""

    per_1000: Decimal
    key: str
    source: str | None = None
    checked: date | None = None
    since: date | None = None
    until: date | None = None

    def active(self, day: date) -> bool:
        return (self.since is None or self.since <= day) and (self.until is None or day < self.until)


@dataclass(slots=True)
class OverrideFile:
    path: str
    digest: str  # first 8 hex digits of the file's sha256, goes into Cost.source
    entries: list[OverrideEntry] = field(default_factory=list)
    provider_discounts: dict[str, Decimal] = field(default_factory=dict)
    model_discounts: dict[str, Decimal] = field(default_factory=dict)
    batch: dict[str, BatchRule] = field(default_factory=dict)
    tools: dict[tuple[str, str], list[ToolRate]] = field(default_factory=dict)  # (provider, tool) -> rates
    providers: dict[str, str] = field(default_factory=dict)  # endpoint (host[:port][/path]) -> provider id
    _by_name: dict[str, list[OverrideEntry]] = field(default_factory=dict)

    def index(self) -> None:
        self._by_name = {}
        for e in self.entries:
            for n in (e.name, *e.aliases):
                self._by_name.setdefault(n, []).append(e)

    def find(self, provider: str, family: str, names: tuple[str, ...], day: date) -> OverrideEntry | None:
        """Exact names and aliases first (most specific name first), then `match` globs."""
        for n in names:
            for e in self._by_name.get(n, ()):
                if e.applies_to(provider, family) and e.active(day):
                    return e
        for e in self.entries:
            if e.match and e.applies_to(provider, family) and e.active(day):
                if any(fnmatch.fnmatchcase(names[0], pat) for pat in e.match):
                    return e
        return None

    def discount(self, provider: str, names: tuple[str, ...], entry_ids: tuple[str, ...]) -> Decimal | None:
        """The most specific discount: a model's replaces its provider's."""
        for n in (*names, *entry_ids):
            if n in self.model_discounts:
                return self.model_discounts[n]
        return self.provider_discounts.get(provider)


def load_override_file(path: str | os.PathLike[str], *, shipped: bool = False) -> OverrideFile:
    p = Path(path)
    file = str(p)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the prices file: {exc.strerror or exc}", file=file) from None
    suffix = p.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(raw.decode("utf-8"))
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(raw.decode("utf-8")) or {}
        else:
            raise ConfigError("unsupported file type: use .toml, .yaml or .yml", file=file)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML/UTF-8: {exc}", file=file) from None
    except ImportError:
        raise ConfigError("YAML prices files need PyYAML installed", file=file) from None
    except Exception as exc:  # yaml.YAMLError and friends
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"not valid YAML: {exc}", file=file) from None
    parsed = parse_overrides(data, file=file, shipped=shipped)
    parsed.digest = hashlib.sha256(raw).hexdigest()[:8]
    return parsed


def parse_overrides(data: Any, *, file: str, shipped: bool = False) -> OverrideFile:
    v = _Validator(file, shipped)
    top = v.table(data, "")
    v.only(top, "", ("models", "discounts", "batch", "tools", "providers"))
    out = OverrideFile(path=file, digest="")
    for name, body in v.table(top.get("models", {}), "models").items():
        items = body if isinstance(body, list) else [body]
        for i, item in enumerate(items):
            key = f"models.{name}" + (f"[{i}]" if isinstance(body, list) else "")
            out.entries.append(v.entry(str(name).strip().lower(), item, key))
    discounts = v.table(top.get("discounts", {}), "discounts")
    v.only(discounts, "discounts", ("providers", "models"))
    for kind, target in (("providers", out.provider_discounts), ("models", out.model_discounts)):
        for name, value in v.table(discounts.get(kind, {}), f"discounts.{kind}").items():
            target[str(name).strip().lower()] = v.multiplier(value, f"discounts.{kind}.{name}")
    for fam, rule in v.table(top.get("batch", {}), "batch").items():
        out.batch[str(fam).lower()] = v.batch_rule(rule, f"batch.{fam}")
    for provider, tools in v.table(top.get("tools", {}), "tools").items():
        for tool, body in v.table(tools, f"tools.{provider}").items():
            items = body if isinstance(body, list) else [body]
            key = f"tools.{provider}.{tool}"
            rates = [v.tool_rate(item, key + (f"[{i}]" if isinstance(body, list) else ""))
                     for i, item in enumerate(items)]
            out.tools[(str(provider).strip().lower(), str(tool).strip().lower())] = rates
    for where, provider in v.table(top.get("providers", {}), "providers").items():
        if not isinstance(provider, str) or not provider.strip():
            raise v.fail(f"providers.{where}", f"expected a provider name such as 'openai', got {_show(provider)}")
        # Kept as written (lower-cased); runtime normalizes endpoints and provider spellings when it merges
        # this with SPENDMETER_PROVIDERS (pricing sits below the provider layer and does not import it).
        out.providers[str(where).strip().lower()] = provider.strip().lower()
    out.index()
    return out


class _Validator:
    def __init__(self, file: str, shipped: bool) -> None:
        self.file = file
        self.shipped = shipped

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, key=key or None)

    def table(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table/mapping, got {_show(value)}")
        return value

    def only(self, table: dict[str, Any], key: str, allowed: tuple[str, ...]) -> None:
        for k in table:
            if k not in allowed:
                where = f"{key}.{k}" if key else str(k)
                raise self.fail(where, f"unknown key; expected one of: {', '.join(allowed)}")

    def number(self, value: Any, key: str) -> Decimal:
        bad = self.fail(key, f"expected a number >= 0, got {_show(value)}")
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int | float):
            if isinstance(value, float) and not math.isfinite(value):
                raise bad
            d = Decimal(str(value))  # str(): 0.3 means 0.3, not the nearest binary float
        elif isinstance(value, str):
            try:
                d = Decimal(value.strip())
            except InvalidOperation:
                raise bad from None
        else:
            raise bad
        if not d.is_finite() or d < 0:
            raise bad
        return d

    def multiplier(self, value: Any, key: str) -> Decimal:
        d = self.number(value, key)
        if d == 0:  # a zero multiplier would report $0, which we never do on purpose
            raise self.fail(key, "expected a multiplier > 0 (0.9 means 10% off), got 0")
        return d

    def day(self, value: Any, key: str) -> date:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise self.fail(key, f"expected a date YYYY-MM-DD, got {_show(value)}")

    def names(self, value: Any, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(x, str) and x.strip() for x in value):
            raise self.fail(key, f"expected a list of names, got {_show(value)}")
        return tuple(x.strip().lower() for x in value)

    def rates(self, value: Any, key: str, extra: tuple[str, ...] = ()) -> Rates:
        t = self.table(value, key)
        self.only(t, key, (*RATE_CLASSES, *extra))
        got = {c: self.number(t[c], f"{key}.{c}") for c in RATE_CLASSES if c in t}
        if "input" not in got:
            raise self.fail(f"{key}.input", "missing: every price set needs at least an input rate")
        # Same rule genai-prices applies: a class without its own price is billed as its parent class.
        cache_write = got.get("cache_write", got["input"])
        return Rates(
            input=got["input"],
            cache_read=got.get("cache_read", got["input"]),
            cache_write_5m=cache_write,
            cache_write_1h=got.get("cache_write_1h", cache_write),
            output=got.get("output"),
        )

    def entry(self, name: str, value: Any, key: str) -> OverrideEntry:
        t = self.table(value, key)
        meta = ("provider", "aliases", "match", "long_context", *TIER_NAMES, "batch",
                "since", "until", "source", "checked")
        self.only(t, key, (*RATE_CLASSES, *meta))
        rates = self.rates({c: t[c] for c in RATE_CLASSES if c in t}, key) if any(
            c in t for c in RATE_CLASSES) else None
        long_context = None
        if "long_context" in t:
            lc_key = f"{key}.long_context"
            lc = self.table(t["long_context"], lc_key)
            above = lc.get("above")
            if isinstance(above, bool) or not isinstance(above, int) or above <= 0:
                raise self.fail(f"{lc_key}.above", f"expected a token count > 0, got {_show(above)}")
            long_context = (above, self.rates({k: x for k, x in lc.items() if k != "above"}, lc_key))
        tiers = {tier: self.rates(t[tier], f"{key}.{tier}") for tier in TIER_NAMES if tier in t}
        batch = self.rates(t["batch"], f"{key}.batch") if "batch" in t else None
        if rates is None and long_context is None and not tiers and batch is None:
            raise self.fail(key, "no prices: give rates (input, output, ...), long_context, priority, flex "
                                 "or batch")
        provider = t.get("provider")
        if provider is not None and (not isinstance(provider, str) or not provider.strip()):
            raise self.fail(f"{key}.provider", f"expected a provider name, got {_show(provider)}")
        since = self.day(t["since"], f"{key}.since") if "since" in t else None
        until = self.day(t["until"], f"{key}.until") if "until" in t else None
        if since and until and until <= since:
            raise self.fail(f"{key}.until", f"must be after since ({since}), got {until}")
        source = t.get("source")
        if source is not None and not isinstance(source, str):
            raise self.fail(f"{key}.source", f"expected a URL string, got {_show(source)}")
        checked = self.day(t["checked"], f"{key}.checked") if "checked" in t else None
        if self.shipped and (not source or not source.startswith("https://") or checked is None):
            raise self.fail(key, "shipped overrides need a 'source' https URL and a 'checked' date")
        return OverrideEntry(
            name=name,
            key=key,
            provider=provider.strip().lower() if provider else None,
            aliases=self.names(t["aliases"], f"{key}.aliases") if "aliases" in t else (),
            match=self.names(t["match"], f"{key}.match") if "match" in t else (),
            rates=rates,
            long_context=long_context,
            tiers=tiers,
            batch=batch,
            since=since,
            until=until,
            source=source,
            checked=checked,
        )

    def tool_rate(self, value: Any, key: str) -> ToolRate:
        t = self.table(value, key)
        self.only(t, key, ("per_1000", "since", "until", "source", "checked"))
        if "per_1000" not in t:
            raise self.fail(f"{key}.per_1000", "missing: USD per 1,000 uses, e.g. per_1000 = 10")
        source = t.get("source")
        checked = self.day(t["checked"], f"{key}.checked") if "checked" in t else None
        if self.shipped and (not isinstance(source, str) or not source.startswith("https://") or checked is None):
            raise self.fail(key, "shipped tool rates need a 'source' https URL and a 'checked' date")
        return ToolRate(
            self.number(t["per_1000"], f"{key}.per_1000"), key, source if isinstance(source, str) else None,
            checked,
            self.day(t["since"], f"{key}.since") if "since" in t else None,
            self.day(t["until"], f"{key}.until") if "until" in t else None,
        )

    def batch_rule(self, value: Any, key: str) -> BatchRule:
        if not isinstance(value, dict):
            if self.shipped:
                raise self.fail(key, "shipped batch rules need multiplier, source and checked")
            return BatchRule(self.multiplier(value, key))
        self.only(value, key, ("multiplier", "source", "checked"))
        if "multiplier" not in value:
            raise self.fail(f"{key}.multiplier", "missing")
        checked = self.day(value["checked"], f"{key}.checked") if "checked" in value else None
        source = value.get("source")
        if self.shipped and (not isinstance(source, str) or not source.startswith("https://") or not checked):
            raise self.fail(key, "shipped batch rules need a 'source' https URL and a 'checked' date")
        return BatchRule(self.multiplier(value["multiplier"], f"{key}.multiplier"), source, checked)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return repr(value)
