"""(provider, model, Usage, tier, batch, when) -> Cost or Unpriced.

A price is resolved once per (provider, model, tier, batch, UTC day) into a `PriceVector` (per-token Decimal
rates, plus long-context cliffs) and cached; pricing a call is then a handful of Decimal multiplications.

Resolution stacks three layers, later ones winning: genai-prices (our private copy), our shipped overrides
(`data/overrides.toml`), the user's prices file. A layer that gives standard rates replaces the whole
vector below it; one that only gives a long-context tier, service-tier or batch prices patches it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from spendmeter.call import Cost, Unpriced, Usage
from spendmeter.pricing import catalog as cat
from spendmeter.pricing.overrides import OverrideEntry, OverrideFile, Rates, load_override_file

log = logging.getLogger("spendmeter")

SHIPPED_OVERRIDES = Path(__file__).with_name("data") / "overrides.toml"
_PER_TOKEN = Decimal("0.000001")
_ZERO = Decimal(0)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_CACHE_LIMIT = 20_000  # distinct (provider, model, tier, batch, day) keys before we start over

# Response `service_tier` values -> the tier we price. Anything else (e.g. OpenAI "scale") is kept as-is
# and, having no price of its own, is unpriced (never silently priced at standard rates).
_STANDARD = None
_TIERS: dict[str | None, str | None] = {
    None: _STANDARD, "": _STANDARD, "default": _STANDARD, "auto": _STANDARD, "standard": _STANDARD,
    "standard_only": _STANDARD, "priority": "priority", "flex": "flex", "batch": "batch",
}


def to_genai_usage(usage: Usage) -> Any:
    """Our disjoint `Usage` as genai-prices' inclusive `Usage`.

    genai-prices counts `input_tokens` as *every* prompt token (cache reads and writes included) and
    `cache_write_tokens` as both cache-write durations; reasoning is inside `output_tokens` in both.
    """
    from genai_prices.types import Usage as GenaiUsage

    return GenaiUsage(
        input_tokens=usage.prompt_total,
        cache_read_tokens=usage.cache_read,
        cache_write_tokens=usage.cache_write,
        cache_write_5m_tokens=usage.cache_write_5m,
        cache_write_1h_tokens=usage.cache_write_1h,
        output_tokens=usage.output,
        output_reasoning_tokens=usage.reasoning,
    )


@dataclass(frozen=True, slots=True)
class ListedModel:
    """One row of `spendmeter prices`: today's standard rates per 1M tokens."""

    provider: str
    model: str
    names: tuple[str, ...]
    rates: Rates
    long_context_above: int | None
    source: str


def _per_token(r: Rates) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal | None]:
    return (r.input * _PER_TOKEN, r.cache_read * _PER_TOKEN, r.cache_write_5m * _PER_TOKEN,
            r.cache_write_1h * _PER_TOKEN, None if r.output is None else r.output * _PER_TOKEN)


class PriceVector:
    """A resolved price: per-token rates, optional long-context cliffs, and where it came from."""

    __slots__ = ("_long", "_pt", "entry", "long_context", "rates", "source")

    def __init__(self, rates: Rates, long_context: tuple[tuple[int, Rates], ...], entry: str, source: str,
                 long_note: str = "", long_source: str | None = None) -> None:
        self.rates = rates
        self.long_context = long_context
        self.entry = entry
        self.source = source
        self._pt = _per_token(rates)
        self._long = tuple(
            (above, _per_token(r), f"{entry} [>{above} prompt tokens{long_note}]", long_source or source)
            for above, r in long_context
        )

    def cost(self, u: Usage) -> Cost | Unpriced:
        pt, entry, source = self._pt, self.entry, self.source
        if self._long:
            prompt = u.input + u.cache_read + u.cache_write_5m + u.cache_write_1h
            for above, long_pt, long_entry, long_source in self._long:  # ascending: the last one crossed wins
                if prompt > above:
                    pt, entry, source = long_pt, long_entry, long_source
        # Zero classes stay an exact Decimal(0) (and skip a multiplication).
        inp = pt[0] * u.input if u.input else _ZERO
        read = pt[1] * u.cache_read if u.cache_read else _ZERO
        write = _ZERO
        if u.cache_write_5m:
            write = pt[2] * u.cache_write_5m
        if u.cache_write_1h:
            write += pt[3] * u.cache_write_1h
        if not u.output:
            out = _ZERO
        elif pt[4] is None:
            return Unpriced(f"{entry} has no output token price ({u.output} output tokens)")
        else:
            out = pt[4] * u.output
        return Cost(inp, read, write, out, inp + read + write + out, source, entry)


@dataclass(slots=True)
class _Offer:
    """What one layer says about a model."""

    label: str
    origin: str  # "genai", "overrides" or "user"
    rates: Rates | None = None
    long: tuple[tuple[int, Rates], ...] | None = None  # None: says nothing; (): no long-context tier
    tiers: dict[str, tuple[Rates, tuple[tuple[int, Rates], ...]]] | None = None
    batch: tuple[Rates, tuple[tuple[int, Rates], ...]] | None = None


class PriceBook:
    def __init__(self, shipped: OverrideFile, user: OverrideFile | None = None) -> None:
        self._catalog = cat.catalog()
        self._shipped = shipped
        self._user = user
        self._cache: dict[tuple[Any, ...], PriceVector | Unpriced] = {}
        self._warned: set[tuple[str, ...]] = set()
        self._today_n = -1
        self._today = date(1970, 1, 1)
        self.base_source = f"genai-prices {cat.GENAI_PRICES_VERSION}"

    # --- the hot path -----------------------------------------------------------------------------

    def price(self, provider: str, model: str, usage: Usage, *, tier: str | None = None, batch: bool = False,
              when: datetime | None = None) -> Cost | Unpriced:
        if tier.__class__ is str:
            tier = tier.lower()  # type: ignore[union-attr]
        tier_key = _TIERS.get(tier, tier)
        if tier_key == "batch":  # Anthropic reports batch as a service tier
            tier_key, batch = None, True
        if when is None:
            n = int(time.time() // 86400)
            if n != self._today_n:
                self._today, self._today_n = date.fromordinal(_EPOCH_ORDINAL + n), n
            day = self._today
        elif when.tzinfo is None or when.tzinfo is UTC:
            day = when.date()  # naive datetimes are taken as UTC, like genai-prices does
        else:
            day = when.astimezone(UTC).date()
        key = (provider, model, tier_key, batch, day)
        vec = self._cache.get(key)
        if vec is None:
            vec, cacheable = self._resolve(provider, model, tier_key, batch, day, when)
            if cacheable:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[key] = vec
        result = vec.cost(usage) if vec.__class__ is PriceVector else vec
        if result.__class__ is Unpriced:
            self._warn_once((provider, model), "spendmeter: not priced: %s", result.reason)  # type: ignore[union-attr]
        return result  # type: ignore[return-value]

    def resolve(self, provider: str, model: str, *, tier: str | None = None, batch: bool = False,
                when: datetime | None = None) -> PriceVector | Unpriced:
        """The price vector a call would use (no caching, no warning): for tools and tests."""
        when = when or datetime.now(UTC)
        day = when.astimezone(UTC).date() if when.tzinfo else when.date()
        tier = tier.lower() if tier else None
        tier_key = _TIERS.get(tier, tier)
        if tier_key == "batch":
            tier_key, batch = None, True
        return self._resolve(provider, model, tier_key, batch, day, when)[0]

    @property
    def endpoint_providers(self) -> dict[str, str]:
        """The prices file's `[providers]` table: endpoint -> provider (the user's file only)."""
        return dict(self._user.providers) if self._user is not None else {}

    def source_tag(self, origin: str) -> str:
        """What `origin` ("overrides", "user") adds to a `Cost.source`."""
        return self._source({origin}).removeprefix(self.base_source)

    # --- resolution, once per key ---------------------------------------------------------------------

    def _resolve(self, provider: str, model: str, tier: str | None, batch: bool, day: date,
                 when: datetime | None) -> tuple[PriceVector | Unpriced, bool]:
        prov = (provider or "").strip().lower()
        fam = cat.family_for(prov)
        names = cat.candidate_names(model or "")
        if not names[0] or names[0] == "unknown":
            return Unpriced(f"no model name for provider {provider!r}"), True
        found = self._catalog.find(fam.genai_ids, names)
        cacheable = found is None or not found.time_of_day_priced
        at = (when or datetime.now(UTC)) if not cacheable else datetime(
            day.year, day.month, day.day, 12, tzinfo=UTC)  # noon UTC: the whole day, any offset

        offers: list[_Offer] = []
        if found is not None:
            offers.append(self._genai_offer(found, tier, batch, day, at))
        for origin, file in (("overrides", self._shipped), ("user", self._user)):
            entry = file.find(prov, fam.name, names, day) if file is not None else None
            if entry is not None:
                offers.append(_entry_offer(entry, origin))

        base: Rates | None = None
        long: tuple[tuple[int, Rates], ...] = ()
        base_level, label, used, long_from = -1, "", set(), None
        for level, offer in enumerate(offers):
            if offer.rates is not None:
                base, long, base_level, label = offer.rates, offer.long or (), level, offer.label
                used, long_from = {offer.origin}, None
            elif offer.long is not None and base is not None:
                long, long_from = offer.long, offer  # patches only the calls above its threshold
        if base is None:
            hint = ""
            if not any(self._catalog.has_provider(g) for g in fam.genai_ids) and not offers:
                if "." in prov or ":" in prov:  # an endpoint nobody mapped: its label is the host itself
                    hint = (f"; {provider!r} is an API endpoint no table maps: map it with SPENDMETER_PROVIDERS="
                            f"\"{provider}=<provider>\" or the prices file's [providers] table")
                else:
                    hint = (f"; the price data has no provider {provider!r}: give its models prices in your "
                            f"prices file ([models.\"{model}\"] provider = \"{provider}\")")
            return Unpriced(
                f"no price for model {model!r} of provider {provider!r} in {self.base_source} or the "
                f"overrides (looked up as {', '.join(names)}){hint}"), True

        above = offers[base_level:]
        tags: list[str] = []
        if batch:
            hit = next(((o, o.batch) for o in reversed(above) if o.batch is not None), None)
            if hit is not None:
                (base, long), used, long_from = hit[1], used | {hit[0].origin}, None
                tags.append("batch")
            else:
                rule = self._user.batch.get(fam.name) if self._user else None
                rule = rule or self._shipped.batch.get(fam.name)
                if rule is None:
                    return Unpriced(f"no batch price for {label} (provider {provider!r})"), cacheable
                base, long = _scale(base, long, rule.multiplier)
                used.add("user" if self._user and fam.name in self._user.batch else "overrides")
                tags.append(f"batch x{rule.multiplier}")
        elif tier is not None:
            hit = next(((o, o.tiers[tier]) for o in reversed(above) if o.tiers and tier in o.tiers), None)
            if hit is not None:
                (base, long), used, long_from = hit[1], used | {hit[0].origin}, None
                tags.append(tier)
            else:
                # Standard rates would understate a priority call: say we cannot price it instead.
                return Unpriced(f"no {tier!r} tier price for {label} on {day} (provider {provider!r})"), cacheable

        if self._user is not None:
            ids = tuple(o.label.split(":", 1)[-1] for o in offers)
            discount = self._user.discount(prov, names, ids)
            if discount is not None:
                base, long = _scale(base, long, discount)
                used.add("user")
                tags.append(f"discount x{discount}")

        entry = " ".join([label, *(f"[{t}]" for t in tags)])
        if long_from is None:
            return PriceVector(base, long, entry, self._source(used)), cacheable
        return PriceVector(base, long, entry, self._source(used), f", {long_from.label}",
                           self._source(used | {long_from.origin})), cacheable

    def _source(self, used: set[str]) -> str:
        source = self.base_source
        if "overrides" in used:
            source += f"+overrides:{self._shipped.digest}"
        if "user" in used and self._user is not None:
            source += f"+user:{self._user.digest}"
        return source

    def _genai_offer(self, found: cat.CatalogModel, tier: str | None, batch: bool, day: date,
                     at: datetime) -> _Offer:
        m = found.model
        offer = _Offer(label=f"{found.provider_id}:{found.id}", origin="genai")
        std = _convert(cat.genai_price_at(m, at, None))
        if std is not None:
            offer.rates, offer.long = std
        if batch and cat.variant_active(m, day, {"processing": "batch"}):
            offer.batch = _convert(cat.genai_price_at(m, at, {"processing": "batch"}))
        elif tier is not None and cat.variant_active(m, day, {"service_tier": tier}):
            tier_prices = _convert(cat.genai_price_at(m, at, {"service_tier": tier}))
            offer.tiers = {tier: tier_prices} if tier_prices is not None else None
        return offer

    def _warn_once(self, key: tuple[str, ...], msg: str, *args: Any) -> None:
        if key not in self._warned:
            if len(self._warned) >= _CACHE_LIMIT:  # arbitrary model names must not grow memory forever
                self._warned.clear()
            self._warned.add(key)
            log.warning(msg, *args)

    # --- listing ------------------------------------------------------------------------------------

    def models(self, provider: str | None = None, pattern: str | None = None) -> list[ListedModel]:
        """Today's standard prices of every known model (genai-prices and overrides), optionally filtered.

        `pattern` is a glob when it holds `*?[`, else a case-insensitive substring of any of the names.
        """
        import fnmatch

        fams = [cat.family_for(p) for p in ((provider,) if provider else ("openai", "anthropic"))]
        today = datetime.now(UTC)
        pat = (pattern or "").lower()

        def wanted(names: tuple[str, ...]) -> bool:
            if not pat:
                return True
            if any(c in pat for c in "*?["):
                return any(fnmatch.fnmatchcase(n, pat) for n in names)
            return any(pat in n for n in names)

        rows: list[ListedModel] = []
        seen: set[tuple[str, str]] = set()
        for fam in fams:
            for gid in fam.genai_ids:
                for cm in self._catalog.models(gid):
                    if (gid, cm.id) in seen or not wanted(cm.names):
                        continue
                    seen.add((gid, cm.id))
                    vec = self._resolve(provider or gid, cm.id, None, False, today.date(), today)[0]
                    if isinstance(vec, PriceVector):
                        above = vec.long_context[0][0] if vec.long_context else None
                        rows.append(ListedModel(gid, cm.id, cm.names, vec.rates, above, vec.source))
        fam_names = {f.name for f in fams} | ({provider.strip().lower()} if provider else set())
        for origin, file in (("overrides", self._shipped), ("user", self._user)):
            for e in file.entries if file is not None else ():
                names = (e.name, *e.aliases)
                if e.rates is None or not e.active(today.date()) or not wanted(names):
                    continue
                if provider and e.provider is not None and e.provider not in fam_names:
                    continue
                rows.append(ListedModel(e.provider or "any", e.name, names, e.rates,
                                        e.long_context[0] if e.long_context else None,
                                        f"{origin}:{file.digest}"))  # type: ignore[union-attr]
        return rows


_Long = tuple[tuple[int, Rates], ...]


def _scale(base: Rates, long: _Long, factor: Decimal) -> tuple[Rates, _Long]:
    return base.scaled(factor), tuple((above, r.scaled(factor)) for above, r in long)


def _convert(model_price: Any) -> tuple[Rates, tuple[tuple[int, Rates], ...]] | None:
    """A genai-prices ModelPrice as our rates plus one full vector per long-context threshold."""
    values = cat.raw_rates(model_price)
    if "input_mtok" not in values:
        return None  # priced by characters, seconds, images...: not a token model we can price

    def build(prompt_tokens: int) -> Rates:
        got = {k: cat.value_at(v, prompt_tokens) for k, v in values.items()}
        inp = got["input_mtok"]
        write = got.get("cache_write_mtok", inp)  # genai-prices bills an unpriced class as its parent
        return Rates(inp, got.get("cache_read_mtok", inp), got.get("cache_write_5m_mtok", write),
                     got.get("cache_write_1h_mtok", write), got.get("output_mtok"))

    return build(0), tuple((t, build(t + 1)) for t in cat.tier_thresholds(values))


def _entry_offer(e: OverrideEntry, origin: str) -> _Offer:
    long = ((e.long_context,) if e.long_context else ()) if e.rates is not None else (
        (e.long_context,) if e.long_context else None)
    return _Offer(
        label=f"{origin} {e.key}",
        origin=origin,
        rates=e.rates,
        long=long,
        tiers={t: (r, ()) for t, r in e.tiers.items()} or None,
        batch=(e.batch, ()) if e.batch is not None else None,
    )


def load_pricebook(overrides_path: str | os.PathLike[str] | None = None) -> PriceBook:
    """Our shipped corrections plus, optionally, the user's prices file. Raises ConfigError on a bad file."""
    shipped = load_override_file(SHIPPED_OVERRIDES, shipped=True)
    user = load_override_file(overrides_path) if overrides_path is not None else None
    return PriceBook(shipped, user)
