"""`spendmeter price` / `prices` and providers: inference from the model name, --provider, tool counts."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from spendmeter.cli import main

M = Decimal(1_000_000)


def run_json(capsys, *argv: str) -> dict:
    assert main(["price", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("model", "provider"), [
    ("deepseek-chat", "deepseek"),
    ("grok-4-fast-reasoning", "x_ai"),
    ("mistral-small-latest", "mistral_ai"),  # OpenRouter lists the name too; the maker's prefix decides
    ("kimi-k2-0905-preview", "moonshotai"),
    ("glm-4.6", "zai"),
    ("gemini-2.5-flash", "gcp.gemini"),
    ("llama-3.3-70b-versatile", "groq"),  # only one seller by that exact name
    ("gpt-4o-mini", "openai"),
])
def test_provider_inferred_where_unambiguous(capsys, model, provider):
    assert run_json(capsys, model, "--input", "10", "--at", "2026-11-30")["provider"] == provider


def test_ambiguous_model_asks_for_provider(capsys):
    assert main(["price", "gpt-oss-120b", "--input", "10"]) == 2
    err = capsys.readouterr().err
    assert "--provider" in err and "cerebras" in err


def test_explicit_provider(capsys):
    out = run_json(capsys, "gpt-oss-120b", "--provider", "cerebras", "--input", "1000", "--output", "100")
    assert Decimal(out["total_usd"]) == (1000 * Decimal("0.35") + 100 * Decimal("0.75")) / M


def test_tool_counts_are_priced_per_use(capsys):
    out = run_json(capsys, "claude-sonnet-4-5", "--input", "1000", "--web-search", "3", "--web-fetch", "2",
                   "--at", "2026-11-30")
    search = 3 * Decimal(10) / 1000
    assert Decimal(out["total_usd"]) == 1000 * Decimal(3) / M + search
    assert out["tools"]["web_search"] == {"uses": 3, "usd": "0.03"}
    assert Decimal(out["cost_usd"]["tools"]) == search


def test_tool_text_output(capsys):
    assert main(["price", "gpt-4o-mini", "--input", "10", "--file-search", "4"]) == 0
    out = capsys.readouterr().out
    assert "file_search" in out and "0.01" in out  # 4 x $2.50 per 1,000


@pytest.mark.parametrize("command", [["prices", "--provider", "bogus"], ["price", "gpt-4o", "--input", "1",
                                                                          "--provider", "bogus"]])
def test_unknown_provider_exits_non_zero(capsys, command):
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "unknown provider 'bogus'" in err and "deepseek" in err


def test_prices_for_a_provider_of_the_table(capsys):
    assert main(["prices", "--provider", "deepseek", "deepseek-chat", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and rows[0]["provider"] == "deepseek"
