"""Real SDKs over real HTTP to the local provider-compatible server, with spendmeter instrumented."""

from __future__ import annotations

import pytest

from spendmeter.demo.provider_server import ProviderServer
from spendmeter.providers import _targets


@pytest.fixture(scope="session")
def provider_server():
    with ProviderServer() as srv:
        yield srv


@pytest.fixture
def instrumented(collected, recorder_state, provider_server):
    """SDKs patched; calls collected; the local server counts as a host that accepts include_usage."""
    try:
        from spendmeter.pricing import load_pricebook

        recorder_state.pricer = load_pricebook(None).price_call
    except ImportError:  # TEMP until pricing lands
        recorder_state.pricer = None
    recorder_state.usage_hosts = ("127.0.0.1",)
    _targets.instrument()
    provider_server.clear()
    yield collected
    _targets.uninstrument()


@pytest.fixture
def oai(provider_server):
    import openai

    return openai.OpenAI(base_url=provider_server.openai_base_url, api_key="sk-test", max_retries=2)


@pytest.fixture
def aoai(provider_server):
    import openai

    return openai.AsyncOpenAI(base_url=provider_server.openai_base_url, api_key="sk-test", max_retries=2)


@pytest.fixture
def ant(provider_server):
    import anthropic

    return anthropic.Anthropic(base_url=provider_server.anthropic_base_url, api_key="sk-ant-test", max_retries=2)


@pytest.fixture
def aant(provider_server):
    import anthropic

    return anthropic.AsyncAnthropic(base_url=provider_server.anthropic_base_url, api_key="sk-ant-test", max_retries=2)
