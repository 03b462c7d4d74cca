"""A whole call's price: steps at their own models, server-side tool fees, per-request fees, billed costs,
and the prices file's `[tools]` and `[providers]` tables. Prices are written here, from the price data."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from spendmeter.call import Attribution, Call, Cost, Step, Unpriced, Usage
from spendmeter.errors import ConfigError
from spendmeter.pricing import load_pricebook, price_call

M = Decimal(1_000_000)
WHEN = datetime(2026, 11, 30, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def book():
    return load_pricebook(None)


def _call(provider: str, model: str, usage: Usage, **fields: object) -> Call:
    call = Call(provider=provider, operation="chat", request_model=model, attribution=Attribution(),
                started_at=WHEN)
    call.usage = usage
    for k, v in fields.items():
        setattr(call, k, v)
    return call


def u(**counts: int) -> Usage:
    return Usage(**counts, source="reported")


def test_steps_at_two_models_are_priced_each_at_its_own(book):
    steps = (Step("claude-sonnet-4-5", u(input=1000, output=100)),
             Step("claude-opus-4-5", u(input=2000, cache_read=500, output=10), "advisor_message"))
    cost = price_call(book, _call("anthropic", "claude-sonnet-4-5", u(input=3000, cache_read=500, output=110),
                                 steps=steps))
    sonnet = (1000 * Decimal(3) + 100 * Decimal(15)) / M
    opus = (2000 * Decimal(5) + 500 * Decimal("0.5") + 10 * Decimal(25)) / M
    assert cost.total == sonnet + opus
    assert dict(cost.parts) == {"claude-sonnet-4-5": cost.parts[0][1], "claude-opus-4-5": cost.parts[1][1]}
    assert (cost.parts[0][1].total, cost.parts[1][1].total) == (sonnet, opus)


def test_each_step_is_its_own_request_for_long_context_thresholds(book):
    # Two 150k-token steps of Claude Sonnet 4 (1M beta, long-context rates above 200k prompt tokens): each is
    # under the threshold, so standard rates apply although their sum is not.
    steps = (Step("claude-sonnet-4-20250514", u(input=150000)), Step("claude-sonnet-4-20250514", u(input=150000)))
    call = _call("anthropic", "claude-sonnet-4-20250514", u(input=300000), steps=steps,
                 started_at=datetime(2026, 3, 1, 12, tzinfo=UTC))
    assert price_call(book, call).total == 300000 * Decimal(3) / M


def test_an_unpriced_step_makes_the_call_unpriced(book):
    steps = (Step("claude-sonnet-4-5", u(input=10)), Step("no-such-model", u(input=10), "advisor_message"))
    result = price_call(book, _call("anthropic", "claude-sonnet-4-5", u(input=20), steps=steps))
    assert isinstance(result, Unpriced) and "no-such-model" in result.reason


def test_web_search_at_the_models_rate_in_the_price_data(book):
    cost = price_call(book, _call("anthropic", "claude-sonnet-4-5", u(input=1000), tool_uses=(("web_search", 4),)))
    assert cost.tools == 4 * Decimal(10) / 1000
    assert cost.total == 1000 * Decimal(3) / M + cost.tools
    assert cost.tool_costs == (("web_search", Decimal("0.040")),)


def test_tool_without_a_per_use_price_is_named_not_invented(book):
    cost = price_call(book, _call("openai", "gpt-4o-mini", u(input=1000), tool_uses=(("code_interpreter", 1),)))
    assert cost.tools == 0 and "no per-use price: code_interpreter" in cost.price_entry


def test_shipped_tool_rate_applies_where_the_price_data_has_none(book):
    # gpt-3.5-turbo has no web_searches_kcount in the price data; the overrides' $10 per 1,000 applies.
    cost = price_call(book, _call("openai", "gpt-3.5-turbo", u(input=10), tool_uses=(("web_search", 1),)))
    assert cost.tools == Decimal(10) / 1000 and "+overrides:" in cost.source


def test_perplexity_request_fee(book):
    cost = price_call(book, _call("perplexity", "sonar", u(input=1000, output=100)))
    assert cost.total == (1000 + 100) * Decimal(1) / M + Decimal(12) / 1000
    assert cost.tool_costs == (("request", Decimal("0.012")),)


def test_billed_cost_is_the_cost_with_the_list_figure_beside_it(book):
    call = _call("openrouter", "openai/gpt-4o-mini", u(input=1000, output=100), billed_cost=Decimal("0.0002"),
                 billed_cost_source="response usage.cost")
    cost = price_call(book, call)
    assert (cost.total, cost.list_total) == (Decimal("0.0002"), (1000 * Decimal("0.15") + 100 * Decimal("0.6")) / M)
    unlisted = price_call(book, _call("openrouter", "vendor/secret-model", u(input=5), billed_cost=Decimal("0.01")))
    assert isinstance(unlisted, Cost) and unlisted.total == Decimal("0.01") and unlisted.list_total is None


def test_unknown_provider_says_how_to_map_it(book):
    result = price_call(book, _call("llm.corp.example", "gpt-4o-mini", u(input=10)))
    assert isinstance(result, Unpriced) and 'SPENDMETER_PROVIDERS="llm.corp.example=<provider>"' in result.reason


def test_user_file_providers_tools_and_free_local_models(tmp_path: Path):
    path = tmp_path / "prices.toml"
    path.write_text(
        '[providers]\n"localhost:11434" = "ollama"\n"gw.corp/anthropic" = "Anthropic"\n\n'
        '[models."llama3.2"]\nprovider = "ollama"\ninput = 0\noutput = 0\n\n'
        '[tools.anthropic.web_search]\nper_1000 = 8\n')
    book = load_pricebook(path)
    assert book.endpoint_providers == {"localhost:11434": "ollama", "gw.corp/anthropic": "anthropic"}
    free = price_call(book, _call("ollama", "llama3.2", u(input=500, output=50)))
    assert isinstance(free, Cost) and free.total == 0  # priced, at the user's own (free) rates
    searched = price_call(book, _call("anthropic", "claude-sonnet-4-5", u(input=10), tool_uses=(("web_search", 1),)))
    assert searched.tools == Decimal(8) / 1000 and "+user:" in searched.source


@pytest.mark.parametrize(("text", "key"), [
    ("[tools.openai.web_search]\nper_1000 = -1\n", "tools.openai.web_search.per_1000"),
    ("[tools.openai.web_search]\nrate = 1\n", "tools.openai.web_search.rate"),
    ("[providers]\n\"h\" = 3\n", "providers.h"),
])
def test_bad_tool_or_provider_entries_name_the_key(tmp_path: Path, text, key):
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_pricebook(path)
    assert key in str(info.value)


def test_openai_cache_writes_at_the_models_write_rate_else_the_input_rate(book):
    from spendmeter.providers.openai import chat_usage

    usage = chat_usage({"prompt_tokens": 3000, "completion_tokens": 100,
                        "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 1500}})
    # gpt-5.6-cyber has its own cache-write rate in the price data: input 12.50, read 1.25, write 15.625, out 75.
    cyber = price_call(book, _call("openai", "gpt-5.6-cyber", usage))
    assert cyber.cache_write == 1500 * Decimal("15.625") / M
    assert cyber.total == (500 * Decimal("12.5") + 1000 * Decimal("1.25") + 1500 * Decimal("15.625")
                           + 100 * Decimal(75)) / M
    # gpt-4o-mini has none: writes are billed at its input rate (0.15), as the price data's rule says.
    mini = price_call(book, _call("openai", "gpt-4o-mini", usage))
    assert mini.cache_write == 1500 * Decimal("0.15") / M
