"""Price-book lookups beyond token prices: per-use tool rates, per-unit fees of a model, and which providers
sell a model or have prices at all (for `spendmeter price` / `prices`).

Tool rates, most specific first: the user's prices file; the price data's rate for the model
(`web_searches_kcount`, `storage_searches_kcount`, USD per 1,000); our shipped overrides. Each by the provider
id, then its price family (Bedrock and Vertex sell Anthropic's tools at Anthropic's rates).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from spendmeter.pricing import catalog as cat
from spendmeter.pricing.overrides import OverrideFile, ToolRate

if TYPE_CHECKING:
    from spendmeter.pricing.engine import PriceBook

# Server-side tools the price data prices per model, and the unit it prices them in (USD per 1,000).
UNIT_TOOLS = {"web_search": "web_searches_kcount", "file_search": "storage_searches_kcount"}


def tool_rate(book: PriceBook, provider: str, tool: str, day: date, model: str | None = None,
              when: datetime | None = None) -> tuple[ToolRate, str] | None:
    """(rate, origin) with origin "user", "genai" or "overrides"; None when nobody prices this tool."""
    prov = (provider or "").strip().lower()
    names = tuple(dict.fromkeys((prov, cat.family_for(prov).name)))
    found = _file_rate(book._user, names, tool, day)
    if found is not None:
        return found, "user"
    unit = UNIT_TOOLS.get(tool)
    if unit is not None and model:
        at = when or datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        rate = model_unit_rate(book, provider, model, unit, at)
        if rate is not None:
            return ToolRate(rate, f"genai-prices {unit}"), "genai"
    found = _file_rate(book._shipped, names, tool, day)
    return (found, "overrides") if found is not None else None


def _file_rate(file: OverrideFile | None, names: tuple[str, ...], tool: str, day: date) -> ToolRate | None:
    for name in names:
        for rate in (file.tools.get((name, tool), ()) if file is not None else ()):
            if rate.active(day):
                return rate
    return None


def model_unit_rate(book: PriceBook, provider: str, model: str, unit: str, when: datetime) -> Decimal | None:
    """A per-unit price of the model in the price data (e.g. `requests_kcount`: USD per 1,000 requests)."""
    fam = cat.family_for((provider or "").strip().lower())
    found = book._catalog.find(fam.genai_ids, cat.candidate_names(model or ""))
    if found is None:
        return None
    value = cat.genai_price_at(found.model, when, None).__dict__.get(unit)
    return value if isinstance(value, Decimal) else None


def sellers(book: PriceBook, model: str) -> list[str]:
    """Every price-data provider that sells a model by exactly this name (or its dated base name)."""
    names = cat.candidate_names(model or "")
    return [pid for pid in book._catalog.provider_ids() if book._catalog.find((pid,), names) is not None]


def provider_ids(book: PriceBook) -> list[str]:
    """Provider ids with prices: the price data's, plus those the override files name."""
    ids = set(book._catalog.provider_ids())
    for f in (book._shipped, book._user):
        if f is not None:
            ids |= {e.provider for e in f.entries if e.provider} | {p for p, _t in f.tools}
    return sorted(ids)


def knows_provider(book: PriceBook, provider: str) -> bool:
    """Any price at all for this provider (genai-prices, our overrides or the user's file)?"""
    prov = (provider or "").strip().lower()
    fam = cat.family_for(prov)
    if any(book._catalog.has_provider(g) for g in fam.genai_ids):
        return True
    files = [f for f in (book._shipped, book._user) if f is not None]
    return any(e.provider in (prov, fam.name) for f in files for e in f.entries) or any(
        p in (prov, fam.name) for f in files for (p, _t) in f.tools)
