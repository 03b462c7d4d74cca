"""Pricing engine: the worked cases. Expected values are computed here from the published per-1M rates."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from spendmeter.call import Attribution, Call, Cost, Unpriced, Usage
from spendmeter.pricing import load_pricebook, price_call

M = Decimal(1_000_000)


def usd(*pairs: tuple[int, str]) -> Decimal:
    """Sum of tokens x USD-per-1M rate, by hand."""
    return sum((Decimal(tokens) * Decimal(rate) for tokens, rate in pairs), Decimal(0)) / M


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def book():
    return load_pricebook()


def cost(result: Cost | Unpriced) -> Cost:
    assert isinstance(result, Cost), result
    return result


# (case, provider, model, usage, tier, expected USD)
CASES = [
    ("1 gpt-4o-mini cached prompt", "openai", "gpt-4o-mini", Usage(input=1200 - 1024, cache_read=1024, output=100),
     None, usd((176, "0.15"), (1024, "0.075"), (100, "0.60"))),
    ("3 gpt-5-nano", "openai", "gpt-5-nano", Usage(input=20, output=500), None, usd((20, "0.05"), (500, "0.40"))),
    ("4 gpt-4.1-nano responses", "openai", "gpt-4.1-nano", Usage(input=18, output=79), None,
     usd((18, "0.10"), (79, "0.40"))),
    ("5 claude-3.5-sonnet cache write", "anthropic", "claude-3-5-sonnet-20240620",
     Usage(input=20, cache_write_5m=1163, output=300), None, usd((20, "3"), (1163, "3.75"), (300, "15"))),
    ("6 claude-3.5-sonnet cache read", "anthropic", "claude-3-5-sonnet-20240620",
     Usage(input=20, cache_read=1163, output=250), None, usd((20, "3"), (1163, "0.30"), (250, "15"))),
    ("7 claude-3-haiku", "anthropic", "claude-3-haiku-20240307", Usage(input=17, output=171), None,
     usd((17, "0.25"), (171, "1.25"))),
    ("8 claude-3-opus", "anthropic", "claude-3-opus-20240229", Usage(input=17, output=200), None,
     usd((17, "15"), (200, "75"))),
    ("9 ada embeddings", "openai", "text-embedding-ada-002", Usage(input=8), None, usd((8, "0.10"))),
    ("11 gpt-3.5-turbo", "openai", "gpt-3.5-turbo", Usage(input=57, output=17), None,
     usd((57, "0.50"), (17, "1.50"))),
    ("12 davinci-002", "openai", "davinci-002", Usage(input=10, output=16), None, usd((10, "2.00"), (16, "2.00"))),
    ("gpt-5 standard", "openai", "gpt-5", Usage(input=8, output=82, reasoning=64), None,
     usd((8, "1.25"), (82, "10"))),
    ("gpt-5 flex", "openai", "gpt-5", Usage(input=1000, cache_read=2000, output=500), "flex",
     usd((1000, "0.625"), (2000, "0.0625"), (500, "5"))),
    ("azure is priced as openai", "azure.ai.openai", "gpt-4o-mini", Usage(input=100, output=10), None,
     usd((100, "0.15"), (10, "0.60"))),
]


@pytest.mark.parametrize(("case", "provider", "model", "usage", "tier", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_worked_cases(book, case, provider, model, usage, tier, expected):
    c = cost(book.price(provider, model, usage, tier=tier, when=day("2026-11-01")))
    assert c.total == expected
    assert c.input + c.cache_read + c.cache_write + c.output == c.total
    assert c.currency == "USD"
    assert c.source.startswith("genai-prices 0.2")


def test_case1_per_class_split(book):
    c = cost(book.price("openai", "gpt-4o-mini", Usage(input=176, cache_read=1024, output=100)))
    assert (c.input, c.cache_read, c.cache_write, c.output) == (
        usd((176, "0.15")), usd((1024, "0.075")), Decimal(0), usd((100, "0.60")))
    assert c.price_entry == "openai:gpt-4o-mini"


@pytest.mark.parametrize("when", ["2025-09-01", "2026-11-01"])  # our dated override, then genai-prices' own
def test_case2_gpt5_priority_vs_standard(book, when):
    u = Usage(input=8, output=82, reasoning=64)
    priority = cost(book.price("openai", "gpt-5", u, tier="priority", when=day(when)))
    standard = cost(book.price("openai", "gpt-5", u, tier="default", when=day(when)))
    assert priority.total == usd((8, "2.50"), (82, "20.00")) == Decimal("0.00166")
    assert standard.total == usd((8, "1.25"), (82, "10")) == Decimal("0.00083")
    assert "priority" in priority.price_entry and "priority" not in standard.price_entry


def test_standard_tier_spellings_are_equal(book):
    u = Usage(input=8, output=82)
    totals = {cost(book.price("openai", "gpt-5", u, tier=t)).total for t in (None, "default", "auto", "DEFAULT")}
    assert totals == {usd((8, "1.25"), (82, "10"))}


def test_reasoning_is_not_double_counted(book):
    with_reasoning = cost(book.price("openai", "o4-mini", Usage(input=10, output=500, reasoning=400)))
    without = cost(book.price("openai", "o4-mini", Usage(input=10, output=500)))
    assert with_reasoning.total == without.total == usd((10, "1.1"), (500, "4.4"))


class TestSonnet4LongContext:
    MODEL = "claude-sonnet-4-20250514"

    def test_above_200k_while_offered(self, book):
        c = cost(book.price("anthropic", self.MODEL, Usage(input=250_000, output=1_000), when=day("2026-03-01")))
        assert c.total == usd((250_000, "6"), (1_000, "22.50")) == Decimal("1.5225")
        assert "overrides:" in c.source and ">200000" in c.price_entry

    def test_cache_tokens_count_toward_the_threshold(self, book):
        u = Usage(input=100_000, cache_read=60_000, cache_write_5m=30_000, cache_write_1h=20_000, output=2_000)
        c = cost(book.price("anthropic", self.MODEL, u, when=day("2026-03-01")))
        assert c.total == usd((100_000, "6"), (60_000, "0.60"), (30_000, "7.50"), (20_000, "12"),
                              (2_000, "22.50"))

    @pytest.mark.parametrize("prompt", [199_000, 200_000])  # "exceeds 200k": exactly 200k is still normal
    def test_at_or_under_200k_normal_rates(self, book, prompt):
        c = cost(book.price("anthropic", self.MODEL, Usage(input=prompt, output=1_000), when=day("2026-03-01")))
        assert c.total == usd((prompt, "3"), (1_000, "15"))
        assert c.source == f"genai-prices {c.source.split()[1]}"  # the override did not touch this price

    def test_after_retirement_genai_prices_again(self, book):
        c = cost(book.price("anthropic", self.MODEL, Usage(input=250_000, output=1_000), when=day("2026-05-01")))
        assert c.total == usd((250_000, "3"), (1_000, "15"))
        assert "overrides" not in c.source

    def test_cutoff_is_a_utc_date(self, book):
        late_evening_in_chicago = datetime(2026, 4, 30, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
        c = cost(book.price("anthropic", self.MODEL, Usage(input=250_000, output=1_000),
                            when=late_evening_in_chicago))
        assert c.total == usd((250_000, "3"), (1_000, "15"))  # already 2026-05-01 in UTC

    def test_bedrock_and_vertex_ids_get_it_too(self, book):
        for provider, model in (("aws.bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0"),
                                ("gcp.vertex_ai", "claude-sonnet-4@20250514")):
            c = cost(book.price(provider, model, Usage(input=250_000, output=1_000), when=day("2026-03-01")))
            assert c.total == Decimal("1.5225"), model


def test_sonnet_4_5_long_context_comes_from_genai_prices(book):
    c = cost(book.price("anthropic", "claude-sonnet-4-5-20250929", Usage(input=210_000, output=100)))
    assert c.total == usd((210_000, "6"), (100, "22.5"))
    assert "claude-sonnet-4-5" in c.price_entry


def test_one_hour_cache_write_is_twice_base_input(book):
    u = Usage(input=10, cache_write_5m=1000, cache_write_1h=2000, output=0)
    c = cost(book.price("anthropic", "claude-3-5-sonnet-20240620", u))
    assert c.cache_write == usd((1000, "3.75"), (2000, "6"))  # 6 = 2 x 3 base input
    assert c.total == usd((10, "3")) + c.cache_write


class TestBatch:
    def test_anthropic_batch_is_half_by_rule(self, book):
        u = Usage(input=17, cache_read=100, output=171)
        c = cost(book.price("anthropic", "claude-3-haiku-20240307", u, batch=True, when=day("2025-06-01")))
        assert c.total == usd((17, "0.125"), (100, "0.015"), (171, "0.625"))
        assert "batch x0.5" in c.price_entry and "+overrides:" in c.source

    def test_anthropic_batch_service_tier_means_batch(self, book):
        u = Usage(input=17, output=171)
        as_tier = cost(book.price("anthropic", "claude-3-haiku-20240307", u, tier="batch"))
        assert as_tier.total == usd((17, "0.125"), (171, "0.625"))

    def test_openai_batch_from_genai_variant(self, book):
        c = cost(book.price("openai", "gpt-4o-mini", Usage(input=1000, output=1000), batch=True,
                            when=day("2026-11-01")))
        assert c.total == usd((1000, "0.075"), (1000, "0.30"))

    def test_openai_batch_before_genai_knew_it(self, book):
        c = cost(book.price("openai", "gpt-4o", Usage(input=1000, output=1000), batch=True, when=day("2025-01-01")))
        assert c.total == usd((1000, "1.25"), (1000, "5"))

    def test_batch_long_context_is_half_the_long_rate(self, book):
        c = cost(book.price("anthropic", "claude-sonnet-4-20250514", Usage(input=250_000, output=1_000),
                            batch=True, when=day("2026-03-01")))
        assert c.total == usd((250_000, "3"), (1_000, "11.25"))


@pytest.mark.parametrize(("provider", "model", "entry"), [
    ("openai", "gpt-4o-2024-08-06", "openai:gpt-4o"),
    ("openai", "gpt-4o-mini-2024-07-18", "openai:gpt-4o-mini"),
    ("openai", "gpt-5-2025-08-07", "openai:gpt-5"),
    ("openai", "gpt-4o-2024-05-13", "openai:gpt-4o-2024-05-13"),  # its own (higher) price, not gpt-4o's
    ("openai", "gpt-3.5-turbo-1106", "openai:gpt-3.5-turbo-1106"),
    ("anthropic", "claude-3-5-sonnet-20240620", "anthropic:claude-3-5-sonnet"),
    ("anthropic", "claude-sonnet-4-5-20250929", "anthropic:claude-sonnet-4-5"),
    ("anthropic", "claude-sonnet-4", "anthropic:claude-sonnet-4-0"),
    ("anthropic", "claude-3-5-sonnet-latest", "anthropic:claude-3-5-sonnet"),
    ("aws.bedrock", "anthropic.claude-3-haiku-20240307-v1:0", "anthropic:claude-3-haiku"),
    ("aws.bedrock", "us.anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic:claude-3-5-sonnet"),
    ("aws.bedrock", "eu.anthropic.claude-3-haiku-20240307-v1:0", "anthropic:claude-3-haiku"),
    ("gcp.vertex_ai", "claude-3-haiku@20240307", "anthropic:claude-3-haiku"),
    ("gcp.vertex_ai", "claude-3-5-sonnet-v2@20241022", "anthropic:claude-3-5-sonnet"),
])
def test_dated_snapshot_names_resolve(book, provider, model, entry):
    assert cost(book.price(provider, model, Usage(input=1, output=1))).price_entry == entry


def test_bedrock_id_costs_the_same_as_anthropic(book):
    u = Usage(input=17, output=171)
    direct = cost(book.price("anthropic", "claude-3-haiku-20240307", u)).total
    assert cost(book.price("aws.bedrock", "anthropic.claude-3-haiku-20240307-v1:0", u)).total == direct
    assert cost(book.price("gcp.vertex_ai", "claude-3-haiku@20240307", u)).total == direct


@pytest.mark.parametrize(("provider", "model"), [
    ("anthropic", "claude-sonnet-4-9"),  # a bare prefix must not match claude-sonnet-4
    ("anthropic", "claude-3-haiku-something"),
    ("openai", "gpt-3.5-turbo-0999"),  # unknown 4-digit snapshot: not priced as gpt-3.5-turbo
    ("openai", "ft:gpt-4o-mini-2024-07-18:acme::abc123"),  # fine-tunes cost more; need a user price
    ("openai", "totally-new-model"),
    ("openai", "unknown"),
    ("anthropic", "gpt-4o"),  # wrong provider
])
def test_unknown_models_are_unpriced_never_zero(book, provider, model):
    result = book.price(provider, model, Usage(input=100, output=100))
    assert isinstance(result, Unpriced)
    assert result.reason


def test_unknown_model_warns_once(caplog):
    book = load_pricebook()
    with caplog.at_level(logging.WARNING, logger="spendmeter"):
        for _ in range(3):
            book.price("openai", "no-such-model-x", Usage(input=1))
        book.price("anthropic", "no-such-model-x", Usage(input=1))
    messages = [r.getMessage() for r in caplog.records if r.name == "spendmeter"]
    assert len(messages) == 2
    assert "no-such-model-x" in messages[0]


def test_a_tier_without_a_known_price_is_unpriced_not_standard(caplog):
    book = load_pricebook()
    u = Usage(input=1000, output=1000)
    with caplog.at_level(logging.WARNING, logger="spendmeter"):
        c = book.price("openai", "gpt-4o", u, tier="scale")
        book.price("openai", "gpt-4o", u, tier="scale")
    assert isinstance(c, Unpriced) and "'scale' tier" in c.reason
    assert len([r for r in caplog.records if "scale" in r.getMessage()]) == 1


def test_output_tokens_on_a_model_without_output_price_are_unpriced(book):
    assert isinstance(book.price("openai", "text-embedding-3-small", Usage(input=5, output=3)), Unpriced)


def test_price_call_uses_the_call_fields(book):
    call = Call(provider="openai", operation="chat", request_model="gpt-5", attribution=Attribution(),
                started_at=day("2026-11-01"))
    call.response_model = "gpt-5-2025-08-07"
    call.service_tier = "priority"
    call.usage = Usage(input=8, output=82, reasoning=64, source="reported")
    assert cost(price_call(book, call)).total == Decimal("0.00166")
    call.batch, call.service_tier = True, None
    assert cost(price_call(book, call)).total == usd((8, "0.625"), (82, "5"))


def test_resolution_is_cached_per_day(monkeypatch):
    book = load_pricebook()
    calls = []
    real = book._resolve
    monkeypatch.setattr(book, "_resolve", lambda *a: calls.append(a) or real(*a))
    u = Usage(input=10, output=10)
    for i in range(50):
        book.price("openai", "gpt-4o-mini", u, when=day("2026-11-01") + timedelta(minutes=i))
    book.price("openai", "gpt-4o-mini", u, when=day("2026-11-02"))
    assert len(calls) == 2


def test_naive_datetime_is_utc(book):
    naive = datetime(2026, 3, 1, 12)
    c = cost(book.price("anthropic", "claude-sonnet-4-20250514", Usage(input=250_000, output=1_000), when=naive))
    assert c.total == Decimal("1.5225")
