"""The endpoint mapping through `init()`: the prices file's `[providers]` table with free local prices,
SPENDMETER_PROVIDERS winning over it, `init(providers=)` winning over both; and an Anthropic client at an
unmapped endpoint, which is not assumed to be Anthropic."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import pytest
from prometheus_client import CollectorRegistry

import spendmeter
from spendmeter.call import Unpriced
from spendmeter.testing import CollectingSink

MSG = [{"role": "user", "content": "hi"}]
USAGE = {"x-fake-usage": "input=1000,output=100"}
M = Decimal(1_000_000)


@pytest.fixture
def sink(pipeline):
    collected = CollectingSink()
    spendmeter.add_sink(collected)
    yield collected
    spendmeter.remove_sink(collected)
    spendmeter.shutdown()


@pytest.fixture
def prices(tmp_path: Path) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text('[providers]\n"127.0.0.1/v1" = "house-vllm"\n\n'
                    '[models."llama-3.1-8b"]\nprovider = "house-vllm"\ninput = 0\noutput = 0\n\n'
                    '[models."gpt-4o-mini"]\nprovider = "gateway"\ninput = 0.2\noutput = 1\n')
    return path


def _oai(provider_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=provider_server.openai_base_url, api_key="sk", max_retries=0)


def test_prices_file_maps_a_local_server_priced_free(sink, provider_server, prices, monkeypatch):
    monkeypatch.delenv("SPENDMETER_PROVIDERS", raising=False)
    spendmeter.init(serve_metrics=False, registry=CollectorRegistry(), prices=prices)
    _oai(provider_server).chat.completions.create(model="llama-3.1-8b", messages=MSG, extra_headers=USAGE)
    call = sink.one()
    assert call.provider == "house-vllm" and call.priced and call.cost.total == 0  # free, and said so


def test_env_mapping_wins_over_the_file_and_init_wins_over_env(sink, provider_server, prices, monkeypatch):
    monkeypatch.setenv("SPENDMETER_PROVIDERS", "127.0.0.1/v1=gateway")  # the file's key: the variable wins
    spendmeter.init(serve_metrics=False, registry=CollectorRegistry(), prices=prices)
    _oai(provider_server).chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)
    assert (sink.calls[-1].provider, sink.calls[-1].cost.total) == ("gateway", (1000 * Decimal("0.2") + 100) / M)
    spendmeter.init(serve_metrics=False, registry=CollectorRegistry(), prices=prices,
                    providers={"127.0.0.1/v1": "openai"})
    _oai(provider_server).chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=USAGE)
    call = sink.calls[-1]
    assert (call.provider, call.cost.total) == ("openai", (1000 * Decimal("0.15") + 100 * Decimal("0.6")) / M)


def test_anthropic_client_at_an_unmapped_endpoint_is_not_assumed_anthropic(sink, provider_server, monkeypatch):
    monkeypatch.delenv("SPENDMETER_PROVIDERS", raising=False)
    spendmeter.init(serve_metrics=False, registry=CollectorRegistry())
    client = anthropic.Anthropic(base_url=provider_server.anthropic_base_url, api_key="k", max_retries=0)
    client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=MSG, extra_headers=USAGE)
    call = sink.one()
    assert call.provider == f"127.0.0.1:{provider_server.port}" and call.server_address == "127.0.0.1"
    assert isinstance(call.cost, Unpriced) and "SPENDMETER_PROVIDERS" in call.cost.reason
