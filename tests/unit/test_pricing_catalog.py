"""Our private genai-prices snapshot: isolation, name matching, and the disjoint -> inclusive usage mapping."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import data_snapshot
from genai_prices.types import ModelPrice

from spendmeter.call import Cost, Usage
from spendmeter.pricing import load_pricebook, to_genai_usage
from spendmeter.pricing.catalog import candidate_names, catalog


def test_to_genai_usage_is_inclusive():
    u = Usage(input=100, cache_read=20, cache_write_5m=3, cache_write_1h=4, output=50, reasoning=30)
    g = to_genai_usage(u)
    assert g.input_tokens == 127  # every prompt token, cached or not
    assert g.cache_read_tokens == 20
    assert g.cache_write_tokens == 7
    assert (g.cache_write_5m_tokens, g.cache_write_1h_tokens) == (3, 4)
    assert g.output_tokens == 50  # reasoning is inside output, not added
    assert g.output_reasoning_tokens == 30


AT = datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(("provider", "model", "usage", "context"), [
    ("openai", "gpt-4o-mini", Usage(input=176, cache_read=1024, output=100), None),
    ("openai", "gpt-5", Usage(input=8, cache_read=64, output=82, reasoning=64), {"service_tier": "priority"}),
    ("openai", "gpt-5", Usage(input=8, output=82), {"service_tier": "flex"}),
    ("openai", "gpt-4o", Usage(input=1000, output=1000), {"processing": "batch"}),
    ("anthropic", "claude-3-5-sonnet-20240620",
     Usage(input=20, cache_read=500, cache_write_5m=1163, cache_write_1h=900, output=300), None),
    ("anthropic", "claude-sonnet-4-5-20250929", Usage(input=150_000, cache_read=60_000, output=10), None),
    ("anthropic", "claude-sonnet-4-5-20250929", Usage(input=150_000, cache_read=40_000, output=10), None),
    ("anthropic", "claude-opus-4-1-20250805", Usage(input=5, cache_write_1h=10_000, output=5), None),
])
def test_engine_agrees_with_genai_prices_own_calculation(provider, model, usage, context):
    """Same data, two computations: ours (disjoint, cached vectors) and genai-prices' (inclusive usage)."""
    book = load_pricebook()
    tier = (context or {}).get("service_tier")
    batch = (context or {}).get("processing") == "batch"
    ours = book.price(provider, model, usage, tier=tier, batch=batch, when=AT)
    assert isinstance(ours, Cost)
    theirs = genai_prices.calc_price(to_genai_usage(usage), model, provider_id=provider,
                                     genai_request_timestamp=AT, price_context=context)
    assert ours.total == theirs.total_price


def test_private_snapshot_ignores_genai_prices_global_updates():
    book = load_pricebook()
    u = Usage(input=1_000_000)
    before = book.price("openai", "gpt-4o-mini", u)
    fresh = load_pricebook()
    # Another library installs an updated global snapshot with a very different price...
    bundled = data_snapshot.get_snapshot()
    tampered = [p for p in bundled.providers]
    openai = next(p for p in tampered if p.id == "openai")
    model = openai.find_model("gpt-4o-mini")
    original = model.prices
    try:
        data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers=tampered, from_auto_update=True))
        model.prices = ModelPrice(input_mtok=Decimal("999"), output_mtok=Decimal("999"))  # even in-place
        assert genai_prices.calc_price(to_genai_usage(u), "gpt-4o-mini", provider_id="openai").total_price == 999
        assert book.price("openai", "gpt-4o-mini", u) == before
        assert fresh.price("openai", "gpt-4o-mini", u, tier="flex") == book.price(
            "openai", "gpt-4o-mini", u, tier="flex")
        assert load_pricebook().price("openai", "gpt-4o-mini", u) == before
    finally:
        model.prices = original
        data_snapshot.set_custom_snapshot(None)
    assert isinstance(before, Cost) and before.total == Decimal("0.15")


def test_loading_starts_no_updater_thread():
    before = {t.ident for t in threading.enumerate()}
    load_pricebook().price("openai", "gpt-4o-mini", Usage(input=1))
    assert {t.ident for t in threading.enumerate()} - before == set()
    assert data_snapshot._custom_snapshot is None  # we never install a global snapshot either


@pytest.mark.parametrize(("model", "names"), [
    ("gpt-4o", ("gpt-4o",)),
    ("GPT-4o-2024-08-06", ("gpt-4o-2024-08-06", "gpt-4o")),
    ("claude-3-5-sonnet-20240620", ("claude-3-5-sonnet-20240620", "claude-3-5-sonnet")),
    ("us.anthropic.claude-3-haiku-20240307-v1:0",
     ("claude-3-haiku-20240307-v1:0", "claude-3-haiku-20240307", "claude-3-haiku")),
    ("claude-3-haiku@20240307", ("claude-3-haiku@20240307", "claude-3-haiku")),
    ("publishers/anthropic/models/claude-3-haiku@20240307", ("claude-3-haiku@20240307", "claude-3-haiku")),
    ("gpt-3.5-turbo-0125", ("gpt-3.5-turbo-0125",)),  # 4-digit snapshots are never stripped
    ("claude-sonnet-4-5", ("claude-sonnet-4-5",)),  # no bare prefix ever produced
])
def test_candidate_names(model, names):
    assert candidate_names(model) == names


def test_no_entry_answers_to_a_name_it_only_prefixes():
    # The exact index holds genai-prices' equals/starts_with values as names; check the classic trap.
    cm = catalog().find(("anthropic",), ("claude-sonnet-4",))
    assert cm is not None and cm.id == "claude-sonnet-4-0"
    assert catalog().find(("anthropic",), ("claude-sonnet-4-5",)).id == "claude-sonnet-4-5"
    assert catalog().find(("anthropic",), ("claude-sonnet-4-7",)) is None


def test_models_listing():
    book = load_pricebook()
    rows = book.models("openai", "gpt-4o-mini")
    mini = next(r for r in rows if r.model == "gpt-4o-mini")
    assert (mini.rates.input, mini.rates.cache_read, mini.rates.output) == (
        Decimal("0.15"), Decimal("0.075"), Decimal("0.6"))
    assert all("gpt-4o-mini" in " ".join(r.names) for r in rows)
    globbed = book.models(None, "claude-3-haiku*")
    assert [r.model for r in globbed] == ["claude-3-haiku"]
    assert any(r.provider == "anthropic" for r in book.models())


def test_google_stable_versions_are_priced_as_their_model():
    from decimal import Decimal

    from spendmeter.call import Usage
    from spendmeter.pricing import load_pricebook

    book = load_pricebook(None)
    usage = Usage(input=1_000_000, output=1_000_000, source="reported")
    for provider in ("gcp.gemini", "gcp.vertex_ai"):
        versioned = book.price(provider, "gemini-2.0-flash-001", usage)
        plain = book.price(provider, "gemini-2.0-flash", usage)
        assert versioned.total == plain.total > Decimal(0)
    assert "gemini-2.0-flash-001" in candidate_names("gemini-2.0-flash-001")[0]
    assert candidate_names("gemini-2.0-flash-001")[1] == "gemini-2.0-flash"
