"""The real anthropic SDK with multi-step usage (`usage.iterations`: compaction, the advisor tool) and
server-side tools (`usage.server_tool_use`), plain and streamed, beta and non-beta.

Every step counts, each at the model that ran it; a step run by another model goes to that model's series;
web searches are priced per use. Prices are written here (USD per 1M tokens, from the price data):
claude-sonnet-4-5 input 3, cache read 0.30, 5-minute cache write 3.75, output 15; claude-opus-4-5 input 5,
cache read 0.50, output 25; web search $10 per 1,000.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from spendmeter.call import Usage
from spendmeter.sinks.prometheus import PrometheusSink
from spendmeter.testing import CollectingSink

M = Decimal(1_000_000)
SONNET, OPUS = "claude-sonnet-4-5", "claude-opus-4-5"
MSG = [{"role": "user", "content": "Summarize our conversation and search the web."}]
# The documented compaction example (a 180k-token summarizing step, then the answer over the summary),
# an advisor step at another model, then the executor's final turn.
ITERATIONS = (
    "compaction:input=180000,output=3500;"
    "message:input=23000,cached=55000,cache_write=1200,output=1000;"
    f"advisor_message@{OPUS}:input=5000,output=200;"
    "message:input=800,cached=78000,output=400"
)
HEADERS = {"x-fake-iterations": ITERATIONS, "x-fake-server-tools": "web_search=3,web_fetch=2",
           "x-fake-usage": "input=800,cached=78000,output=400"}

SONNET_USAGE = Usage(input=180000 + 23000 + 800, cache_read=55000 + 78000, cache_write_5m=1200,
                     output=3500 + 1000 + 400, source="reported")
OPUS_USAGE = Usage(input=5000, output=200, source="reported")
SONNET_COST = (SONNET_USAGE.input * Decimal(3) + SONNET_USAGE.cache_read * Decimal("0.30")
               + 1200 * Decimal("3.75") + SONNET_USAGE.output * Decimal(15)) / M
OPUS_COST = (5000 * Decimal(5) + 200 * Decimal(25)) / M
SEARCH_COST = 3 * Decimal(10) / 1000  # web fetch has no per-use fee
TOTAL = SONNET_COST + OPUS_COST + SEARCH_COST


@pytest.fixture
def metrics(instrumented, pipeline):
    registry = CollectorRegistry()
    sink = PrometheusSink(registry)
    pipeline.set(sinks=(*pipeline.current.sinks, sink))
    return registry


def check(call, registry: CollectorRegistry) -> None:
    assert [s.kind for s in call.steps] == ["compaction", "message", "advisor_message", "message"]
    assert [s.model for s in call.steps] == [SONNET, SONNET, OPUS, SONNET]
    assert call.usage.total == SONNET_USAGE.total + OPUS_USAGE.total
    assert call.tool_uses == (("web_fetch", 2), ("web_search", 3))
    assert call.cost.total == TOTAL
    assert call.cost.tools == SEARCH_COST
    assert dict(call.cost.parts)[OPUS].total == OPUS_COST
    assert dict(call.cost.parts)[SONNET].total == SONNET_COST + SEARCH_COST

    def sample(name: str, model: str, **labels: str) -> float | None:
        base = {"provider": "anthropic", "model": model, "user": "unknown", "feature": "unknown", "agent": "unknown"}
        return registry.get_sample_value(name, {**base, **labels})

    assert sample("llm_cost_usd_total", OPUS) == pytest.approx(float(OPUS_COST))
    assert sample("llm_cost_usd_total", SONNET) == pytest.approx(float(SONNET_COST + SEARCH_COST))
    assert sample("llm_tokens_total", OPUS, type="input") == 5000
    assert sample("llm_tokens_total", SONNET, type="cache_read") == 133000
    assert sample("llm_tool_uses_total", SONNET, tool="web_search") == 3
    assert sample("llm_requests_total", SONNET, status="ok", usage="reported") == 1
    assert sample("llm_requests_total", OPUS, status="ok", usage="reported") is None  # one call, one request


def test_anthropic_iterations_and_server_tools(instrumented, ant, metrics):
    message = ant.messages.create(model=SONNET, max_tokens=500, messages=MSG, extra_headers=HEADERS)
    assert message.usage.input_tokens == 800  # the SDK's own object is untouched: top-level = the last step
    check(instrumented.one(), metrics)


def test_anthropic_beta_iterations_and_server_tools(instrumented, ant, metrics):
    ant.beta.messages.create(model=SONNET, max_tokens=500, messages=MSG, extra_headers=HEADERS,
                             betas=["compact-2026-01-12"])
    check(instrumented.one(), metrics)


def test_anthropic_stream_iterations_and_server_tools(instrumented, ant, metrics):
    events = list(ant.messages.create(model=SONNET, max_tokens=500, messages=MSG, extra_headers=HEADERS,
                                      stream=True))
    assert events[-1].type == "message_stop"
    check(instrumented.one(), metrics)


async def test_anthropic_async_stream_manager_iterations(instrumented, aant, metrics):
    async with aant.messages.stream(model=SONNET, max_tokens=500, messages=MSG, extra_headers=HEADERS) as stream:
        final = await stream.get_final_message()
    assert final.usage.output_tokens == 400
    check(instrumented.one(), metrics)


def test_anthropic_beta_stream_manager_iterations(instrumented, ant, metrics):
    with ant.beta.messages.stream(model=SONNET, max_tokens=500, messages=MSG, extra_headers=HEADERS) as stream:
        for _ in stream:
            pass
    check(instrumented.one(), metrics)


def test_anthropic_web_search_without_iterations(instrumented, ant):
    ant.messages.create(model=SONNET, max_tokens=100, messages=MSG,
                        extra_headers={"x-fake-usage": "input=2000,output=300", "x-fake-server-tools": "web_search=1"})
    call = instrumented.one()
    assert call.steps == () and call.tool_uses == (("web_search", 1),)
    assert call.cost.total == (2000 * Decimal(3) + 300 * Decimal(15)) / M + Decimal(10) / 1000


def test_anthropic_step_at_an_unpriced_model_makes_the_call_unpriced(instrumented, ant):
    headers = {"x-fake-iterations": "advisor_message@claude-imaginary-9:input=10,output=1;message:input=5,output=2"}
    ant.messages.create(model=SONNET, max_tokens=100, messages=MSG, extra_headers=headers)
    call = instrumented.one()
    assert not call.priced and "claude-imaginary-9" in call.cost.reason  # never a partial sum


def test_collecting_sink_sees_one_call_per_invocation(pipeline, ant, instrumented):
    assert isinstance(instrumented, CollectingSink)
    ant.messages.create(model=SONNET, max_tokens=500, messages=MSG, extra_headers=HEADERS)
    ant.messages.create(model=SONNET, max_tokens=500, messages=MSG, extra_headers=HEADERS)
    assert len(instrumented.calls) == 2
