"""Real SDKs over real HTTP to the local provider-compatible server, with spendmeter instrumented."""

from __future__ import annotations

import pytest

from spendmeter.instrumentation import patches
from spendmeter.testing import ProviderServer
from spendmeter.testing.scenarios import LOCAL_PROVIDERS


@pytest.fixture(scope="session")
def provider_server():
    with ProviderServer() as srv:
        yield srv


@pytest.fixture
def instrumented(collected, pipeline, provider_server):
    """SDKs patched; calls collected; the local server counts as a host that accepts include_usage, and is
    mapped to openai (its `/v1` base URL) and anthropic (its root), as a user maps a local server."""
    from spendmeter.pricing import load_pricebook, pricer

    pipeline.set(pricer=pricer(load_pricebook(None)))
    pipeline.set(usage_hosts=("127.0.0.1",), providers=LOCAL_PROVIDERS)
    patches.instrument()
    provider_server.clear()
    yield collected
    patches.uninstrument()


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
