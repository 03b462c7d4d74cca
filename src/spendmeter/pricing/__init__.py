"""Pricing: `(provider, model, Usage, tier, batch, when)` -> `Cost` or `Unpriced`. Pure; needs no SDK."""

from __future__ import annotations

from spendmeter.pricing.engine import ListedModel, PriceBook, PriceVector, load_pricebook, to_genai_usage
from spendmeter.pricing.overrides import Rates

__all__ = ["ListedModel", "PriceBook", "PriceVector", "Rates", "load_pricebook", "to_genai_usage"]
