"""User prices files and our shipped override file: semantics and strict validation."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from spendmeter.call import Cost, Unpriced, Usage
from spendmeter.errors import ConfigError
from spendmeter.pricing import load_pricebook
from spendmeter.pricing.engine import SHIPPED_OVERRIDES
from spendmeter.pricing.overrides import load_override_file

M = Decimal(1_000_000)


def usd(*pairs: tuple[int, str]) -> Decimal:
    return sum((Decimal(t) * Decimal(r) for t, r in pairs), Decimal(0)) / M


def cost(result: Cost | Unpriced) -> Cost:
    assert isinstance(result, Cost), result
    return result


USER_TOML = """
[models."my-ft"]
provider = "openai"
aliases = ["my-ft-v2"]
match = ["ft:gpt-4o-mini-2024-07-18:acme:*"]
input = 0.30
cache_read = "0.15"
output = 1.20
source = "https://example.com/our-contract"

[models."gpt-4o"]
input = 2.00
output = 8.00

[models."llama-3-70b-selfhosted"]
provider = "openai"
input = 0.05
output = 0.05
priority = { input = 0.10, output = 0.10 }
batch = { input = 0.01, output = 0.01 }

[discounts.providers]
anthropic = 0.9

[discounts.models]
"claude-3-haiku" = 0.5
"""


@pytest.fixture
def user_book(tmp_path: Path):
    path = tmp_path / "prices.toml"
    path.write_text(USER_TOML)
    return load_pricebook(path), path


def test_user_model_price_and_aliases(user_book):
    book, path = user_book
    u = Usage(input=1000, cache_read=2000, output=100)
    expected = usd((1000, "0.30"), (2000, "0.15"), (100, "1.20"))
    for name in ("my-ft", "MY-FT-v2", "ft:gpt-4o-mini-2024-07-18:acme::abc123"):
        c = cost(book.price("openai", name, u))
        assert c.total == expected, name
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
        assert c.source.endswith(f"+user:{digest}")
        assert "user models.my-ft" in c.price_entry


def test_user_entry_restricted_to_its_provider(user_book):
    book, _ = user_book
    assert isinstance(book.price("anthropic", "my-ft", Usage(input=1)), Unpriced)
    assert isinstance(book.price("azure.ai.openai", "my-ft", Usage(input=1)), Cost)  # openai family


def test_user_replaces_a_genai_price_for_the_name_and_its_snapshots(user_book):
    book, _ = user_book
    u = Usage(input=1000, cache_read=1000, output=1000)
    # cache_read not given: billed at the entry's input rate (the same rule genai-prices applies)
    expected = usd((1000, "2.00"), (1000, "2.00"), (1000, "8.00"))
    assert cost(book.price("openai", "gpt-4o", u)).total == expected
    assert cost(book.price("openai", "gpt-4o-2024-08-06", u)).total == expected


def test_user_tier_and_batch_prices(user_book):
    book, _ = user_book
    u = Usage(input=1000, output=1000)
    model = "llama-3-70b-selfhosted"
    assert cost(book.price("openai", model, u)).total == usd((1000, "0.05"), (1000, "0.05"))
    assert cost(book.price("openai", model, u, tier="priority")).total == usd((1000, "0.10"), (1000, "0.10"))
    assert cost(book.price("openai", model, u, batch=True)).total == usd((1000, "0.01"), (1000, "0.01"))


def test_provider_discount_and_more_specific_model_discount(user_book):
    book, _ = user_book
    u = Usage(input=1000, output=1000)
    opus = cost(book.price("anthropic", "claude-3-opus-20240229", u))
    assert opus.total == usd((1000, "15"), (1000, "75")) * Decimal("0.9")
    assert "discount x0.9" in opus.price_entry
    haiku = cost(book.price("anthropic", "claude-3-haiku-20240307", u))
    assert haiku.total == usd((1000, "0.25"), (1000, "1.25")) * Decimal("0.5")
    bedrock = cost(book.price("aws.bedrock", "anthropic.claude-3-opus-20240229-v1:0", u))
    assert bedrock.total == usd((1000, "15"), (1000, "75"))  # discounts are per provider name as received


def test_user_file_changes_nothing_else(user_book):
    book, _ = user_book
    c = cost(book.price("openai", "gpt-4o-mini", Usage(input=100, output=10)))
    assert c.total == usd((100, "0.15"), (10, "0.60"))
    assert "+user:" not in c.source


def test_dated_user_entries(tmp_path: Path):
    path = tmp_path / "prices.toml"
    path.write_text("""
[[models."house-model"]]
input = 1
output = 2
until = 2026-01-01

[[models."house-model"]]
input = 3
output = 4
since = 2026-01-01
""")
    book = load_pricebook(path)
    u = Usage(input=1000, output=1000)
    old = book.price("openai", "house-model", u, when=datetime(2025, 12, 31, 23, tzinfo=UTC))
    new = book.price("openai", "house-model", u, when=datetime(2026, 1, 1, 1, tzinfo=UTC))
    assert cost(old).total == usd((1000, "1"), (1000, "2"))
    assert cost(new).total == usd((1000, "3"), (1000, "4"))
    assert "models.house-model[1]" in cost(new).price_entry


def test_yaml_user_file(tmp_path: Path):
    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  my-deploy:\n    provider: azure.ai.openai\n    input: 0.2\n    output: 0.8\n"
                    "discounts:\n  providers:\n    openai: 0.8\n")
    book = load_pricebook(path)
    u = Usage(input=1000, output=1000)
    assert cost(book.price("azure.ai.openai", "my-deploy", u)).total == usd((1000, "0.2"), (1000, "0.8"))
    assert isinstance(book.price("openai", "my-deploy", u), Unpriced)
    assert cost(book.price("openai", "gpt-4o-mini", u)).total == usd((1000, "0.15"), (1000, "0.60")) * Decimal(
        "0.8")


BAD_FILES = [
    ('[models."my-ft"]\ninput = "abc"\n', "models.my-ft.input", "expected a number >= 0, got 'abc'"),
    ('[models."my-ft"]\ninput = -1\n', "models.my-ft.input", "expected a number >= 0, got -1"),
    ('[models."my-ft"]\ninput = true\n', "models.my-ft.input", "expected a number >= 0"),
    ('[models."my-ft"]\ninput = 1\nouptut = 2\n', "models.my-ft.ouptut", "unknown key"),
    ('[models."my-ft"]\noutput = 2\n', "models.my-ft.input", "missing"),
    ('[models."my-ft"]\nprovider = "openai"\n', "models.my-ft", "no prices"),
    ('[models."my-ft"]\ninput = 1\nsince = "yesterday"\n', "models.my-ft.since", "expected a date"),
    ('[models."my-ft"]\ninput = 1\nsince = 2026-02-01\nuntil = 2026-01-01\n', "models.my-ft.until", "after"),
    ('[models."my-ft"]\ninput = 1\npriority = { output = 2 }\n', "models.my-ft.priority.input", "missing"),
    ('[models."my-ft"]\ninput = 1\nlong_context = { input = 2 }\n', "models.my-ft.long_context.above",
     "token count"),
    ('[models."my-ft"]\ninput = 1\naliases = [1]\n', "models.my-ft.aliases", "list of names"),
    ("[discounts.providers]\nopenai = 0\n", "discounts.providers.openai", "> 0"),
    ("[discounts.vendors]\nopenai = 0.5\n", "discounts.vendors", "unknown key"),
    ("[pricez]\n", "pricez", "unknown key"),
    ("models = 3\n", "models", "expected a table"),
]


@pytest.mark.parametrize(("text", "key", "message"), BAD_FILES, ids=[b[1] for b in BAD_FILES])
def test_bad_file_names_file_key_and_reason(tmp_path: Path, text, key, message):
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_pricebook(path)
    err = info.value
    assert err.file == str(path)
    assert err.key == key
    assert message in str(err)
    assert str(path) in str(err) and repr(key) in str(err)


def test_exact_message_shape(tmp_path: Path):
    path = tmp_path / "prices.toml"
    path.write_text('[models.my-ft]\ninput = "abc"\n')
    with pytest.raises(ConfigError, match=r"prices\.toml, key 'models\.my-ft\.input': expected a number >= 0, "
                                          r"got 'abc'$"):
        load_pricebook(path)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("prices.toml", "[models\ninput=", "not valid TOML"),
    ("prices.yaml", "models: [unclosed", "not valid YAML"),
    ("prices.json", "{}", "unsupported file type"),
])
def test_unparseable_files(tmp_path: Path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_pricebook(path)
    assert info.value.file == str(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read") as info:
        load_pricebook(tmp_path / "nope.toml")
    assert info.value.file == str(tmp_path / "nope.toml")


def test_shipped_file_is_valid_and_every_entry_is_sourced():
    shipped = load_override_file(SHIPPED_OVERRIDES, shipped=True)
    assert shipped.entries and shipped.batch
    for e in shipped.entries:
        assert e.source and e.source.startswith("https://") and e.checked, e.key
    for fam, rule in shipped.batch.items():
        assert rule.source and rule.checked and rule.multiplier == Decimal("0.5"), fam


def test_shipped_rules_demand_sources(tmp_path: Path):
    path = tmp_path / "o.toml"
    path.write_text('[models."x"]\ninput = 1\n')
    with pytest.raises(ConfigError, match="source"):
        load_override_file(path, shipped=True)


def test_documented_examples_load(tmp_path: Path):
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "pricing.md").read_text()
    toml_block = re.search(r"```toml\n(.*?)```", doc, re.S).group(1)
    yaml_block = re.search(r"```yaml\n(.*?)```", doc, re.S).group(1)
    (tmp_path / "p.toml").write_text(toml_block)
    (tmp_path / "p.yaml").write_text(yaml_block)
    book = load_pricebook(tmp_path / "p.toml")
    u = Usage(input=200_000, output=1000)
    assert cost(book.price("openai", "llama-3-70b", u)).total == usd((200_000, "0.10"), (1000, "0.10"))
    assert cost(book.price("mistral_ai", "mistral-large-latest", Usage(input=1000), batch=True)).price_entry.endswith(
        "[batch x0.5]")
    assert isinstance(load_pricebook(tmp_path / "p.yaml").price("openai", "my-ft", u), Cost)
