"""Pricing: `(provider, model, Usage, tier, batch, when)` -> `Cost` or `Unpriced`. Pure; needs no SDK."""

from __future__ import annotations

from functools import partial

from spendmeter.call import Call, Cost, Unpriced
from spendmeter.pricing.calls import price_call
from spendmeter.pricing.engine import ListedModel, PriceBook, PriceVector, load_pricebook, to_genai_usage
from spendmeter.pricing.overrides import Rates


def pricer(book: PriceBook) -> partial[Cost | Unpriced]:
    """The pipeline's pricer: a whole call (steps, tool fees, billed cost) priced with `book`."""
    return partial(price_call, book)


__all__ = [
    "Call",
    "ListedModel",
    "PriceBook",
    "PriceVector",
    "Rates",
    "load_pricebook",
    "price_call",
    "pricer",
    "to_genai_usage",
]
