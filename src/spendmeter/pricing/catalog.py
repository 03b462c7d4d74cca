"""A private, frozen copy of genai-prices' bundled data, with explicit name lookup.

Why a copy: genai-prices keeps one process-global snapshot that its auto-updater (or any other library) may
replace at runtime. We read the bundled `genai_prices.data` module once, deep-copy the providers, and never
touch `UpdatePrices`, so the prices we report only change when the installed package version changes.

Why our own lookup: genai-prices' match rules include bare prefixes (`starts_with`). We turn every
`equals`/`starts_with` value into an *exact* name and then try, in order: the name as given, then the name
with known dated-snapshot suffixes removed (`-2024-08-06`, `-20240620`, `-v1:0`, `@20240307`, `-latest`).
`claude-sonnet-4` therefore never swallows `claude-sonnet-4-5`, and `gpt-3.5-turbo-1106` stays its own price.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from importlib.metadata import version
from typing import Any

GENAI_PRICES_VERSION = version("genai-prices")


@dataclass(frozen=True, slots=True)
class Family:
    """How an OTel `gen_ai.provider.name` maps onto genai-prices providers."""

    name: str  # the family whose prices apply ("openai" for azure.ai.openai)
    genai_ids: tuple[str, ...]  # genai-prices provider ids searched in order


# OTel GenAI provider names -> price family. Bedrock and Vertex host Anthropic models at Anthropic's list
# prices; their own catalogs (aws, google) are searched second for the models only they sell.
_FAMILIES: dict[str, Family] = {
    "openai": Family("openai", ("openai",)),
    "azure.ai.openai": Family("openai", ("openai",)),
    "anthropic": Family("anthropic", ("anthropic",)),
    "aws.bedrock": Family("anthropic", ("anthropic", "aws")),
    "gcp.vertex_ai": Family("anthropic", ("anthropic", "google")),
    "gcp.gen_ai": Family("google", ("google",)),
    "gcp.gemini": Family("google", ("google",)),
    "x_ai": Family("x-ai", ("x-ai",)),
    "mistral_ai": Family("mistral", ("mistral",)),
    "deepseek": Family("deepseek", ("deepseek",)),
    "groq": Family("groq", ("groq",)),
    "cohere": Family("cohere", ("cohere",)),
    "perplexity": Family("perplexity", ("perplexity",)),
}


def family_for(provider: str) -> Family:
    provider = provider.strip().lower()
    fam = _FAMILIES.get(provider)
    if fam is not None:
        return fam
    # Any other name is tried as a genai-prices provider id as-is (e.g. "together", "fireworks").
    return Family(provider, (provider,))


# Region prefixes of Bedrock cross-region inference profiles (`us.anthropic.claude-...`).
_BEDROCK_PREFIX = re.compile(r"^(?:(?:us|eu|apac|au|jp|ca|us-gov|global)\.)?anthropic\.")
_VERTEX_PREFIX = re.compile(r"^(?:projects/[^/]+/locations/[^/]+/)?publishers/anthropic/models/")
# Dated-snapshot suffixes, tried one at a time from the end. Four-digit OpenAI suffixes (`-0613`, `-1106`)
# are deliberately absent: those snapshots had their own prices and must match exactly or not at all.
_SUFFIXES = (
    re.compile(r"-v\d+(?::\d+)?$"),  # bedrock -v1:0, vertex -v2
    re.compile(r"@(?:\d{8}|latest)$"),  # vertex @20240307
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # openai -2024-08-06
    re.compile(r"-\d{8}$"),  # anthropic -20240620
    re.compile(r"-latest$"),
    re.compile(r"-00\d$"),  # google stable versions: gemini-2.0-flash-001 is gemini-2.0-flash, same price
)


@functools.lru_cache(maxsize=4096)  # a pure function of the name, asked on every priced call (bounded)
def candidate_names(model: str) -> tuple[str, ...]:
    """The names to try for `model`, most specific first."""
    name = model.strip().lower()
    name = name.rsplit("/", 1)[-1] if name.startswith("arn:") else name  # bedrock inference-profile ARN
    name = _VERTEX_PREFIX.sub("", name)
    name = name.removeprefix("models/")  # Gemini's resource names (`models/gemini-2.5-flash`)
    name = _BEDROCK_PREFIX.sub("", name)
    names = [name]
    while True:  # one suffix at a time: claude-3-5-sonnet-v2@20241022 -> ...-v2 -> claude-3-5-sonnet
        for suffix in _SUFFIXES:
            stripped = suffix.sub("", names[-1])
            if stripped != names[-1] and stripped:
                names.append(stripped)
                break
        else:
            return tuple(names)


@dataclass(frozen=True, slots=True)
class CatalogModel:
    provider_id: str
    model: Any  # genai_prices.types.ModelInfo (our private deep copy)
    names: tuple[str, ...]  # the exact names it answers to

    @property
    def id(self) -> str:
        return self.model.id

    @property
    def time_of_day_priced(self) -> bool:
        """Off-peak prices (deepseek) depend on the hour, not just the date: don't cache them per day."""
        from genai_prices.types import TimeOfDateConstraint

        conds = self.model.prices if isinstance(self.model.prices, list) else []
        variants = self.model.price_variants or []
        return any(isinstance(c.constraint, TimeOfDateConstraint) for c in [*conds, *variants])


class Catalog:
    """Exact-name index over our copy of genai-prices' providers."""

    def __init__(self, providers: list[Any]) -> None:
        self._providers = {p.id: p for p in providers}
        self._index: dict[str, dict[str, CatalogModel]] = {}
        self._models: dict[str, list[CatalogModel]] = {}
        for p in providers:
            index: dict[str, CatalogModel] = {}
            models = []
            for m in p.models:
                names = tuple(dict.fromkeys([m.id.lower(), *_exact_names(m.match)]))
                entry = CatalogModel(p.id, m, names)
                models.append(entry)
                for n in names:
                    index.setdefault(n, entry)  # genai-prices semantics: first model in the list wins
            self._index[p.id] = index
            self._models[p.id] = models

    def has_provider(self, provider_id: str) -> bool:
        return provider_id in self._providers

    def provider_ids(self) -> list[str]:
        return list(self._providers)

    def find(self, genai_ids: tuple[str, ...], names: tuple[str, ...]) -> CatalogModel | None:
        for name in names:  # most specific name first, across all providers of the family
            for pid in genai_ids:
                hit = self._index.get(pid, {}).get(name)
                if hit is not None:
                    return hit
        return None

    def models(self, provider_id: str) -> list[CatalogModel]:
        return self._models.get(provider_id, [])


def _exact_names(clause: Any) -> list[str]:
    """`equals` and `starts_with` values of a match rule, as exact names; `and`/regex rules add nothing."""
    if hasattr(clause, "equals"):
        return [clause.equals.lower()]
    if hasattr(clause, "starts_with"):
        return [clause.starts_with.lower().rstrip("-@.")]
    if hasattr(clause, "or_"):
        return [n for sub in clause.or_ for n in _exact_names(sub)]
    return []


@cache
def catalog() -> Catalog:
    """Built once per process from the bundled data module, never from the updater's snapshot."""
    from genai_prices.data import providers

    return Catalog(copy.deepcopy(providers))


# --- reading genai-prices price objects -------------------------------------------------------------

_RATE_KEYS = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_5m_mtok",
              "cache_write_1h_mtok", "output_mtok")


def genai_price_at(model: Any, at: datetime, context: dict[str, str] | None) -> Any:
    """genai-prices' own date/variant resolution (pure), on our copy of the model."""
    return model.get_prices(at, context)


def variant_active(model: Any, when_day: date, context: dict[str, str]) -> bool:
    """Does genai-prices have a price variant for exactly this context, in force on this date?"""
    for v in model.price_variants or ():
        if v.when != context:
            continue
        start = getattr(v.constraint, "start_date", None)  # time-of-day variants apply on every date
        if start is None or start <= when_day:
            return True
    return False


def raw_rates(model_price: Any) -> dict[str, Any]:
    """The token price values (Decimal or TieredPrices) a ModelPrice holds; other units are ignored."""
    return {k: v for k in _RATE_KEYS if (v := model_price.__dict__.get(k)) is not None}


def tier_thresholds(values: dict[str, Any]) -> list[int]:
    return sorted({t.start for v in values.values() if not isinstance(v, Decimal) for t in v.tiers})


def value_at(value: Any, prompt_tokens: int) -> Decimal:
    """genai-prices' cliff rule: the highest tier whose start is *below* the prompt total applies to all."""
    if isinstance(value, Decimal):
        return value
    price = value.base
    for tier in value.tiers:
        if prompt_tokens > tier.start:
            price = tier.price
    return price
