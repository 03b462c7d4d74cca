"""The endpoint table, the user's endpoint mapping, unknown endpoints, and where streams are asked for usage."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest

from spendmeter.errors import ConfigError
from spendmeter.providers import endpoints as ep
from spendmeter.providers.base import RequestOptions
from spendmeter.providers.openai.request import request_facts
from spendmeter.runtime.settings import resolve


@pytest.mark.parametrize(("url", "provider"), [
    ("https://api.openai.com/v1", "openai"),
    ("https://myres.openai.azure.com/openai/v1", "azure.ai.openai"),
    ("https://x.services.ai.azure.com/models", "azure.ai.openai"),
    ("https://openrouter.ai/api/v1", "openrouter"),
    ("https://api.groq.com/openai/v1", "groq"),
    ("https://api.deepseek.com", "deepseek"),
    ("https://api.deepseek.com/anthropic", "deepseek"),  # its Anthropic-compatible endpoint: same provider
    ("https://api.mistral.ai/v1", "mistral_ai"),
    ("https://api.cerebras.ai/v1", "cerebras"),
    ("https://api.together.xyz/v1", "together"),
    ("https://api.fireworks.ai/inference/v1", "fireworks"),
    ("https://api.x.ai/v1", "x_ai"),
    ("https://api.perplexity.ai", "perplexity"),
    ("https://api.moonshot.ai/v1", "moonshotai"),
    ("https://api.z.ai/api/paas/v4", "zai"),
    ("https://generativelanguage.googleapis.com/v1beta/openai/", "gcp.gemini"),
    ("https://api.anthropic.com", "anthropic"),
])
def test_table_hosts(url, provider):
    u = httpx.URL(url)
    assert ep.identify(u.host, u.port, u.path, "openai") == provider


def test_unknown_endpoint_is_its_own_label_with_an_explicit_port():
    assert ep.identify("llm.corp.example", None, "/v1", "openai") == "llm.corp.example"
    assert ep.identify("LOCALHOST", 11434, "/v1", "openai") == "localhost:11434"
    assert ep.identify(None, None, "", "openai") == "openai"  # no base URL at all: the SDK's own provider


def test_user_mapping_wins_and_the_most_specific_entry_matches():
    user = ep.parse_mapping("localhost:11434=ollama, localhost=vllm, gw.corp/anthropic=anthropic, "
                            "gw.corp=openai, .corp.example=mistral, api.groq.com=openai")
    assert ep.identify("localhost", 11434, "/v1", "x", user) == "ollama"
    assert ep.identify("localhost", 8000, "/v1", "x", user) == "vllm"
    assert ep.identify("gw.corp", None, "/anthropic/v1", "x", user) == "anthropic"
    assert ep.identify("gw.corp", None, "/anthropicx", "x", user) == "openai"  # a path prefix ends at a '/'
    assert ep.identify("a.b.corp.example", None, "", "x", user) == "mistral_ai"  # price-data spelling -> our id
    assert ep.identify("api.groq.com", None, "/openai/v1", "x", user) == "openai"  # the user overrides the table


@pytest.mark.parametrize("bad", ["localhost", "=openai", "host=", "a=b,c"])
def test_bad_mapping_text_fails_at_init_naming_the_variable(bad):
    with pytest.raises(ConfigError) as info:
        resolve(env={"SPENDMETER_PROVIDERS": bad})
    assert "SPENDMETER_PROVIDERS" in str(info.value)


def test_mapping_from_env_and_from_init():
    assert resolve(env={"SPENDMETER_PROVIDERS": "http://LocalHost:1234/=lmstudio"}).providers == {
        "localhost:1234": "lmstudio"}
    assert resolve(providers={"vllm.internal:8000": "x-ai"}, env={"SPENDMETER_PROVIDERS": "a=b"}).providers == {
        "vllm.internal:8000": "x_ai"}
    with pytest.raises(ConfigError):
        resolve(providers={"h": ""}, env={})


def _client(url: str, name: str = "OpenAI") -> SimpleNamespace:
    cls = type(name, (), {})
    client = cls()
    client.base_url = httpx.URL(url)
    return SimpleNamespace(_client=client)


@pytest.mark.parametrize(("url", "asks"), [
    ("https://api.openai.com/v1", True),
    ("https://api.groq.com/openai/v1", True),
    ("https://openrouter.ai/api/v1", False),  # sends usage unasked: adding anything would change the stream
    ("https://api.mistral.ai/v1", False),
    ("https://vllm.internal:8000/v1", False),  # unknown: only where the user says so
])
def test_stream_usage_is_asked_for_where_the_table_says(url, asks):
    facts = request_facts("chat", _client(url), {"model": "m", "stream": True}, RequestOptions())
    assert (facts.send_kwargs is not None) is asks
    if asks:
        assert facts.send_kwargs["extra_body"]["stream_options"] == {"include_usage": True}  # as it is, in the JSON


def test_usage_hosts_extend_the_table():
    options = RequestOptions(usage_hosts=("vllm.internal",))
    facts = request_facts("chat", _client("https://vllm.internal:8000/v1"), {"model": "m", "stream": True}, options)
    assert facts.send_kwargs is not None


def test_the_callers_own_stream_options_are_respected():
    kwargs = {"model": "m", "stream": True, "stream_options": {"include_usage": False}}
    assert request_facts("chat", _client("https://api.openai.com/v1"), kwargs, RequestOptions()).send_kwargs is None


def test_azure_client_class_and_deployment():
    facts = request_facts("chat", _client("https://r.openai.azure.com/openai/deployments/d", "AzureOpenAI"),
                          {"model": "dep"}, RequestOptions())
    assert (facts.provider, facts.deployment) == ("azure.ai.openai", "dep")


def test_provider_for_keeps_its_old_meaning():
    assert ep.provider_for("api.openai.com", "x") == "openai"
    assert ep.match_host("a.openai.azure.com", ep.HOSTS) == "azure.ai.openai"


def test_stream_usage_warning_once_per_host(caplog):
    with caplog.at_level("WARNING", logger="spendmeter"):
        for _ in range(3):
            ep.warn_stream_usage_missing("once.example")
        ep.warn_stream_usage_missing("twice.example")
    texts = [r.getMessage() for r in caplog.records]
    assert sum("once.example" in t for t in texts) == 1 and sum("twice.example" in t for t in texts) == 1


def test_an_unknown_endpoint_label_is_bounded_like_any_provider():
    from spendmeter.call import Attribution, Call
    from spendmeter.telemetry.labels import LabelPolicy

    policy = LabelPolicy({"provider": 2})
    long_host = "a" * 100 + ".corp.example"
    labels = []
    for host in (long_host, "b.example", "c.example"):
        call = Call(provider=ep.identify(host, None, "", "openai"), operation="chat", request_model="m",
                    attribution=Attribution())
        labels.append(policy.labels(call).provider)
    assert len(labels[0]) == 64 and labels[0].startswith("aaaa")
    assert labels[1:] == ["b.example", "other"]  # past the provider cap: folded, totals stay exact


@pytest.mark.parametrize("make", [
    lambda: __import__("openai").OpenAI(api_key="sk", base_url="https://api.groq.com/openai/v1"),
    lambda: __import__("openai").AsyncOpenAI(api_key="sk", base_url="http://127.0.0.1:8123/v1"),
    lambda: __import__("openai").AzureOpenAI(api_key="sk", api_version="2024-10-21",
                                            azure_endpoint="https://me.openai.azure.com"),
    lambda: __import__("anthropic").Anthropic(api_key="sk"),
    lambda: __import__("anthropic").AsyncAnthropic(api_key="sk", base_url="https://api.deepseek.com/anthropic"),
])
def test_the_sdk_clients_keep_the_base_url_where_the_fast_path_reads_it(make):
    """`endpoint_parts` reads the SDK base client's `_base_url` instead of the `base_url` property (openai's
    imports a module on every read). This fails loudly if an SDK stops keeping it there or its property starts
    returning something else; endpoint_parts would then still be right, through the property."""
    client = make()
    assert vars(client)["_base_url"] is client.base_url
    url = client.base_url
    assert ep.endpoint_parts(client) == (url.host, url.port, url.path)


def test_a_client_without_the_private_url_goes_through_its_property():
    client = SimpleNamespace(base_url=httpx.URL("https://api.mistral.ai:8443/v1/"))
    assert ep.endpoint_parts(client) == ("api.mistral.ai", 8443, "/v1/")
