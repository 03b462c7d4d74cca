"""The real openai SDK at every host of the endpoint table, answered by the local fake provider.

The client's URL names the real host (so the SDK, spendmeter and the span see `api.groq.com`, ...); an httpx
transport connects to 127.0.0.1 instead, and maps the provider's documented base path onto the fake
provider's `/v1`. Never the internet. Each host reports stream usage the way its API reference says
(`x-fake-stream-usage`), and every number is checked against prices written here, as Decimal arithmetic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import time
from decimal import Decimal

import httpx
import openai
import pytest

from spendmeter.call import Cost, Unpriced, Usage
from spendmeter.instrumentation import patches

M = Decimal(1_000_000)
MSG = [{"role": "user", "content": "hi"}]
USAGE = "input=1000,cached=200,output=100"
EXPECTED = Usage(input=1000, cache_read=200, output=100, source="reported")


class LocalTransport(httpx.BaseTransport):
    """Sends every request to the fake provider on 127.0.0.1 while the URL (and the Host header) keep the
    real host; the provider's base path becomes the fake provider's `/v1`."""

    def __init__(self, port: int, base_path: str | None) -> None:
        self.port, self.base_path = port, None if base_path is None else base_path.rstrip("/")
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self.base_path is not None and path.startswith(self.base_path + "/"):
            path = "/v1" + path[len(self.base_path):]
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port, path=path)
        return self.inner.handle_request(request)


@dataclass(frozen=True)
class Host:
    base_url: str
    model: str
    provider: str
    rates: tuple[str, str, str]  # USD per 1M: input, cache read, output (as the price data lists them)
    stream_usage: str = "asked"  # how this host reports usage in a stream (scenarios.STREAM_USAGE_MODES)
    request_fee: str = "0"  # USD per request on top of tokens (Perplexity's Sonar: $12 per 1,000 requests)

    @property
    def host(self) -> str:
        return httpx.URL(self.base_url).host

    def expected_cost(self, usage: Usage = EXPECTED) -> Decimal:
        inp, read, out = (Decimal(r) for r in self.rates)
        return (usage.input * inp + usage.cache_read * read + usage.output * out) / M + Decimal(self.request_fee)


HOSTS = {
    "openai": Host("https://api.openai.com/v1", "gpt-4o-mini", "openai", ("0.15", "0.075", "0.6")),
    "azure-v1": Host("https://myres.openai.azure.com/openai/v1", "gpt-4o-mini", "azure.ai.openai",
                     ("0.15", "0.075", "0.6")),
    "openrouter": Host("https://openrouter.ai/api/v1", "openai/gpt-4o-mini", "openrouter", ("0.15", "0.075", "0.6"),
                       "always"),
    "groq": Host("https://api.groq.com/openai/v1", "openai/gpt-oss-120b", "groq", ("0.15", "0.075", "0.6")),
    "mistral": Host("https://api.mistral.ai/v1", "mistral-small-latest", "mistral_ai", ("0.15", "0.015", "0.6"),
                    "last"),
    "cerebras": Host("https://api.cerebras.ai/v1", "gpt-oss-120b", "cerebras", ("0.35", "0.35", "0.75")),
    "together": Host("https://api.together.xyz/v1", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "together",
                     ("0.88", "0.88", "0.88"), "last"),
    "fireworks": Host("https://api.fireworks.ai/inference/v1", "accounts/fireworks/models/deepseek-v3-0324",
                      "fireworks", ("0.9", "0.9", "0.9"), "last"),
    "xai": Host("https://api.x.ai/v1", "grok-4-fast-reasoning", "x_ai", ("0.2", "0.05", "0.5")),
    "perplexity": Host("https://api.perplexity.ai", "sonar", "perplexity", ("1", "1", "1"), "last", "0.012"),
    "moonshot": Host("https://api.moonshot.ai/v1", "kimi-k2-0905-preview", "moonshotai", ("0.6", "0.15", "2.5"),
                     "choice"),
    "zai": Host("https://api.z.ai/api/paas/v4", "glm-4.6", "zai", ("0.6", "0.11", "2.2"), "last"),
    "gemini": Host("https://generativelanguage.googleapis.com/v1beta/openai", "gemini-2.5-flash", "gcp.gemini",
                   ("0.3", "0.03", "2.5")),
}
# DeepSeek bills off-peak hours (16:30-00:30 UTC) at half the standard rates; both are in the price data.
DEEPSEEK = Host("https://api.deepseek.com", "deepseek-chat", "deepseek", ("0.27", "0.07", "1.1"))
DEEPSEEK_OFF_PEAK = ("0.135", "0.035", "0.55")


def client_for(host: Host, server, cls=openai.OpenAI, **kwargs):
    transport = LocalTransport(server.port, httpx.URL(host.base_url).path)
    return cls(base_url=host.base_url, api_key="sk-test", max_retries=0,
               http_client=httpx.Client(transport=transport), **kwargs)


def headers(host: Host, **extra: str) -> dict[str, str]:
    return {"x-fake-usage": USAGE, "x-fake-stream-usage": host.stream_usage, **extra}


def normalized(chunk) -> tuple[dict, dict]:
    """What the caller sees of a chunk, without the per-request id and timestamp."""
    dumped = {k: v for k, v in chunk.model_dump(exclude_unset=True).items() if k not in ("id", "created")}
    as_json = {k: v for k, v in json.loads(chunk.to_json()).items() if k not in ("id", "created")}
    return dumped, as_json


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_table_host_chat_is_labelled_and_priced_exactly(instrumented, provider_server, name):
    host = HOSTS[name]
    client = client_for(host, provider_server)
    result = client.chat.completions.create(model=host.model, messages=MSG, extra_headers=headers(host))
    assert result.usage.prompt_tokens == 1200
    assert provider_server.requests[-1].headers["host"] == host.host  # the request went out under that name
    call = instrumented.one()
    assert (call.provider, call.server_address, call.usage) == (host.provider, host.host, EXPECTED)
    assert isinstance(call.cost, Cost), call.cost
    assert call.cost.total == host.expected_cost()


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_table_host_stream_chunks_are_what_the_uninstrumented_sdk_gives(instrumented, provider_server, name):
    host = HOSTS[name]
    client = client_for(host, provider_server)
    patches.uninstrument()
    bare = [normalized(c) for c in client.chat.completions.create(
        model=host.model, messages=MSG, stream=True, extra_headers=headers(host))]
    bare_request = provider_server.requests[-1].body
    patches.instrument()
    seen = [normalized(c) for c in client.chat.completions.create(
        model=host.model, messages=MSG, stream=True, extra_headers=headers(host))]
    assert seen == bare  # model_dump(exclude_unset=True) and to_json(), chunk for chunk
    asked = provider_server.requests[-1].body.get("stream_options")
    assert "stream_options" not in bare_request
    assert asked == ({"include_usage": True} if host.stream_usage == "asked" else None)
    call = instrumented.one()
    assert (call.provider, call.usage, call.end_reason) == (host.provider, EXPECTED, "completed")
    assert call.cost.total == host.expected_cost()


def test_openrouter_billed_cost_is_the_cost_and_the_list_price_stays_beside_it(instrumented, provider_server):
    host = HOSTS["openrouter"]
    client = client_for(host, provider_server)
    client.chat.completions.create(model=host.model, messages=MSG,
                                   extra_headers=headers(host, **{"x-fake-billed-cost": "0.000198"}))
    list(client.chat.completions.create(model=host.model, messages=MSG, stream=True,
                                        extra_headers=headers(host, **{"x-fake-billed-cost": "0.000198"})))
    for call in instrumented.calls:
        assert call.cost.total == Decimal("0.000198")
        assert call.cost.list_total == host.expected_cost()  # 1000 x 0.15 + 200 x 0.075 + 100 x 0.6 per 1M
        assert call.cost.source == "openrouter response usage.cost"
    assert len(instrumented.calls) == 2


def test_deepseek_priced_at_the_rate_of_the_hour(instrumented, provider_server):
    client = client_for(DEEPSEEK, provider_server)
    client.chat.completions.create(model=DEEPSEEK.model, messages=MSG, extra_headers=headers(DEEPSEEK))
    call = instrumented.one()
    at = call.started_at.time()
    peak = time(0, 30) <= at < time(16, 30)
    host = DEEPSEEK if peak else Host(DEEPSEEK.base_url, DEEPSEEK.model, "deepseek", DEEPSEEK_OFF_PEAK)
    assert (call.provider, call.usage) == ("deepseek", EXPECTED)
    assert call.cost.total == host.expected_cost()


def test_azure_client_at_its_resource_host(instrumented, provider_server):
    host = HOSTS["azure-v1"]
    transport = LocalTransport(provider_server.port, None)  # the fake provider routes Azure paths as they are
    client = openai.AzureOpenAI(azure_endpoint="https://myres.openai.azure.com", api_key="k",
                                api_version="2024-10-21", max_retries=0, http_client=httpx.Client(transport=transport))
    client.chat.completions.create(model="my-mini", messages=MSG, extra_headers={"x-fake-usage": USAGE})
    call = instrumented.one()
    assert (call.provider, call.deployment, call.server_address) == ("azure.ai.openai", "my-mini", host.host)


def test_unknown_host_is_its_own_provider_and_never_openai_priced(instrumented, provider_server):
    host = Host("https://llm-gateway.corp.example/v1", "gpt-4o-mini", "llm-gateway.corp.example", ("0", "0", "0"))
    client = client_for(host, provider_server)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=headers(host))
    call = instrumented.one()
    assert (call.provider, call.server_address) == ("llm-gateway.corp.example", "llm-gateway.corp.example")
    assert isinstance(call.cost, Unpriced) and "SPENDMETER_PROVIDERS" in call.cost.reason


def test_unknown_host_mapped_by_the_user_to_openai(instrumented, provider_server, pipeline):
    pipeline.set(providers={"llm-gateway.corp.example": "openai"})
    host = Host("https://llm-gateway.corp.example/v1", "gpt-4o-mini", "openai", ("0.15", "0.075", "0.6"))
    client = client_for(host, provider_server)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=headers(host))
    call = instrumented.one()
    assert (call.provider, call.cost.total) == ("openai", host.expected_cost())


def test_stream_at_a_host_without_usage_is_missing_with_one_warning(instrumented, provider_server, caplog):
    host = Host("http://vllm.internal:8000/v1", "my-llama", "vllm.internal:8000", ("0", "0", "0"))
    client = client_for(host, provider_server)
    with caplog.at_level("WARNING", logger="spendmeter"):
        for _ in range(2):
            list(client.chat.completions.create(model="my-llama", messages=MSG, stream=True))
    assert [c.usage.source for c in instrumented.calls] == ["missing", "missing"]
    assert instrumented.calls[0].provider == "vllm.internal:8000"
    warnings = [r.getMessage() for r in caplog.records if "report no usage" in r.getMessage()]
    assert len(warnings) == 1 and "vllm.internal" in warnings[0] and "SPENDMETER_USAGE_HOSTS" in warnings[0]


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_openai_cache_writes_priced_at_the_write_rate(instrumented, provider_server, api):
    # gpt-5.6-cyber per 1M (price data): input 12.50, cache read 1.25, cache write 15.625, output 75.
    host = HOSTS["openai"]
    client = client_for(host, provider_server)
    counts = {"x-fake-usage": "input=500,cached=1000,cache_write=1500,output=100"}
    if api == "chat":
        client.chat.completions.create(model="gpt-5.6-cyber", messages=MSG, extra_headers=counts)
    else:
        client.responses.create(model="gpt-5.6-cyber", input="hi", extra_headers=counts)
    call = instrumented.one()
    assert call.usage == Usage(input=500, cache_read=1000, cache_write_5m=1500, output=100, source="reported")
    assert call.cost.total == (500 * Decimal("12.5") + 1000 * Decimal("1.25") + 1500 * Decimal("15.625")
                               + 100 * Decimal(75)) / M


def _responses_body(request: httpx.Request) -> httpx.Response:
    """A Responses API answer with two web searches and a page open, in the API reference's shape."""
    search = {"type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "q"}}
    return httpx.Response(200, json={
        "id": "resp_1", "object": "response", "created_at": 1764576000, "status": "completed",
        "model": "gpt-5-2025-08-07", "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "output": [
            {**search, "id": "ws_1"}, {**search, "id": "ws_2"},
            {"type": "web_search_call", "id": "ws_3", "status": "completed",
             "action": {"type": "open_page", "url": "https://example.com"}},
            {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Found it.", "annotations": []}]},
        ],
        "usage": {"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 100,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 1100},
    })


def test_openai_responses_web_search_fees(instrumented):
    # gpt-5 per 1M: input 1.25, output 10; web search $10 per 1,000 calls (searches only, not page opens).
    client = openai.OpenAI(api_key="sk", max_retries=0, http_client=httpx.Client(
        transport=httpx.MockTransport(_responses_body)))
    response = client.responses.create(model="gpt-5", input="search", tools=[{"type": "web_search"}])
    assert response.output_text == "Found it."
    call = instrumented.one()
    assert call.tool_uses == (("web_search", 2),)
    assert call.cost.tools == 2 * Decimal(10) / 1000
    assert call.cost.total == (1000 * Decimal("1.25") + 100 * Decimal(10)) / M + call.cost.tools
