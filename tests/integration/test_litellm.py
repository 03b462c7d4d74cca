"""litellm over HTTP to the local fake provider: every entry point, streamed or not, openai/, anthropic/,
azure/ and OpenAI-compatible routes: one Call each, exact disjoint tokens, served provider and model, and
nothing that LiteLLM estimated ever counted as reported."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: LiteLLM's bundled price map only

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import pytest

litellm = pytest.importorskip("litellm")

from spendmeter import attribute  # noqa: E402
from spendmeter.call import Usage  # noqa: E402
from spendmeter.errors import BudgetExceeded  # noqa: E402
from spendmeter.testing.scenarios import HEADER_KEY, HEADER_USAGE, SCENARIO_TOOL_CALL  # noqa: E402

litellm.telemetry = False
MSG = [{"role": "user", "content": "Where is my order #1234?"}]
OAI_USAGE = {HEADER_USAGE: "input=176,cached=1024,output=100,reasoning=64"}
OAI_EXPECTED = Usage(input=176, cache_read=1024, output=100, reasoning=64, source="reported")
ANT_USAGE = {HEADER_USAGE: "input=176,cached=1024,cache_write=300,cache_write_1h=200,output=100"}
ANT_EXPECTED = Usage(input=176, cache_read=1024, cache_write_5m=300, cache_write_1h=200, output=100, source="reported")
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture
def oai_kw(provider_server):
    return {"api_base": provider_server.openai_base_url, "api_key": "sk-test"}


@pytest.fixture
def ant_kw(provider_server):
    return {"api_base": provider_server.anthropic_base_url, "api_key": "sk-ant-test"}


def _posts(server) -> list:
    return [r for r in server.requests if r.method == "POST"]


# --- completion / acompletion -----------------------------------------------------------------------------
def test_litellm_completion_openai_route(instrumented, oai_kw, provider_server):
    with attribute(user="alice", feature="support", agent="router"):
        result = litellm.completion(model="openai/gpt-4o-mini", messages=MSG, extra_headers=OAI_USAGE, **oai_kw)
    assert type(result) is litellm.ModelResponse
    call = instrumented.one()
    assert call.usage == OAI_EXPECTED
    assert (call.provider, call.operation, call.request_model, call.model) == (
        "openai", "chat", "gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (call.attribution.user, call.attribution.feature, call.status, call.stream) == ("alice", "support", "ok",
                                                                                          False)
    assert call.priced and call.cost.total > 0
    assert call.server_port == provider_server.port  # the openai SDK's request path fed the same Call
    assert len(_posts(provider_server)) == 1


async def test_litellm_acompletion_openai_route(instrumented, oai_kw):
    with attribute(user="bob"):
        result = await litellm.acompletion(model="openai/gpt-4o-mini", messages=MSG, extra_headers=OAI_USAGE,
                                           **oai_kw)
    assert result.usage.prompt_tokens == 1200
    call = instrumented.one()
    assert call.usage == OAI_EXPECTED and call.attribution.user == "bob"


def test_litellm_openai_route_cache_writes_are_split_out(instrumented, oai_kw):
    headers = {HEADER_USAGE: "input=176,cached=1024,cache_write=300,output=100"}
    litellm.completion(model="openai/gpt-4o-mini", messages=MSG, extra_headers=headers, **oai_kw)
    assert instrumented.one().usage == Usage(input=176, cache_read=1024, cache_write_5m=300, output=100,
                                             source="reported")


def test_litellm_completion_positional_model(instrumented, oai_kw):
    litellm.completion("openai/gpt-4o-mini", MSG, extra_headers=OAI_USAGE, **oai_kw)
    assert instrumented.one().request_model == "gpt-4o-mini"


def test_litellm_completion_anthropic_route_splits_folded_cache_tokens(instrumented, ant_kw):
    result = litellm.completion(model="anthropic/claude-sonnet-4-5", messages=MSG, extra_headers=ANT_USAGE,
                                **ant_kw)
    assert result.usage.prompt_tokens == 1700  # LiteLLM folds cache reads and writes into prompt_tokens
    call = instrumented.one()
    assert call.usage == ANT_EXPECTED
    assert (call.provider, call.model) == ("anthropic", "claude-sonnet-4-5")
    # 176 x 3 + 1024 x 0.30 + 300 x 3.75 + 200 x 6 + 100 x 15 per 1M
    assert call.cost.total == Decimal("0.0046602")


async def test_litellm_acompletion_anthropic_route(instrumented, ant_kw):
    await litellm.acompletion(model="anthropic/claude-sonnet-4-5", messages=MSG, extra_headers=ANT_USAGE, **ant_kw)
    assert instrumented.one().usage == ANT_EXPECTED


def test_litellm_completion_tools(instrumented, oai_kw):
    result = litellm.completion(model="openai/gpt-4o-mini", messages=MSG, tools=TOOLS, extra_headers=OAI_USAGE,
                                **oai_kw)
    assert result.choices[0].message.tool_calls[0].function.name == "get_weather"
    call = instrumented.one()
    assert call.usage == OAI_EXPECTED and call.finish_reasons == ("tool_calls",)


def test_litellm_deepseek_route_is_provider_deepseek(instrumented, provider_server):
    litellm.completion(model="deepseek/deepseek-chat", messages=MSG, api_base=provider_server.openai_base_url,
                       api_key="sk-test", extra_headers={HEADER_USAGE: "input=1000,cached=500,output=200"})
    call = instrumented.one()
    assert (call.provider, call.request_model, call.model) == ("deepseek", "deepseek-chat", "deepseek-chat")
    assert call.usage == Usage(input=1000, cache_read=500, output=200, source="reported")
    assert call.priced


def test_litellm_groq_route_is_provider_groq(instrumented, provider_server):
    litellm.completion(model="groq/llama-3.1-8b-instant", messages=MSG, api_base=provider_server.url + "/openai/v1",
                       api_key="gsk-test", extra_headers={HEADER_USAGE: "input=50,output=20"})
    call = instrumented.one()
    assert (call.provider, call.model, call.usage.input, call.usage.output) == ("groq", "llama-3.1-8b-instant", 50,
                                                                                20)


@pytest.mark.parametrize("stream", [False, True])
def test_litellm_gemini_route(instrumented, provider_server, stream):
    headers = {HEADER_USAGE: "input=176,cached=1024,output=100,reasoning=64"}
    result = litellm.completion(model="gemini/gemini-2.5-flash", messages=MSG, api_base=provider_server.url,
                                api_key="gm-test", extra_headers=headers, stream=stream)
    if stream:
        list(result)
    call = instrumented.one()
    assert (call.provider, call.model, call.stream) == ("gcp.gemini", "gemini-2.5-flash", stream)
    assert call.usage == Usage(input=176, cache_read=1024, output=100, reasoning=64, source="reported")
    assert call.priced


def test_litellm_azure_route_through_sdk_methods_is_counted_once(instrumented, provider_server):
    """LiteLLM's azure/ route calls the openai SDK's patched `chat.completions` methods: still one Call."""
    litellm.completion(model="azure/my-gpt4o", messages=MSG, api_base=provider_server.url, api_key="az-test",
                       api_version="2024-10-21", extra_headers=OAI_USAGE)
    call = instrumented.one()
    assert call.provider == "azure.ai.openai" and call.usage == OAI_EXPECTED


async def test_litellm_router_calls_are_counted(instrumented, oai_kw):
    router = litellm.Router(model_list=[{"model_name": "fast", "litellm_params": {"model": "openai/gpt-4o-mini",
                                                                                **oai_kw}}])
    router.completion(model="fast", messages=MSG, extra_headers=OAI_USAGE)
    await router.acompletion(model="fast", messages=MSG, extra_headers=OAI_USAGE)
    assert [c.usage for c in instrumented.calls] == [OAI_EXPECTED, OAI_EXPECTED]


# --- streams --------------------------------------------------------------------------------------------------
def test_litellm_stream_without_usage_is_estimated_never_reported(instrumented, oai_kw, pipeline):
    pipeline.set(usage_hosts=())  # an endpoint not known to accept stream_options: nobody asks for usage
    chunks = list(litellm.completion(model="openai/gpt-4o-mini", messages=MSG, stream=True, extra_headers=OAI_USAGE,
                                     **oai_kw))
    assert chunks and all(c.choices for c in chunks)
    call = instrumented.one()
    assert call.usage.source == "estimated" and call.stream and call.end_reason == "completed"
    assert call.usage.total != OAI_EXPECTED.total  # LiteLLM's tokenizer guess, not what the server billed


def test_litellm_stream_asks_for_usage_where_accepted_and_hides_the_chunk(instrumented, oai_kw, provider_server):
    stream = litellm.completion(model="openai/gpt-4o-mini", messages=MSG, stream=True, extra_headers=OAI_USAGE,
                                **oai_kw)
    assert isinstance(stream, litellm.CustomStreamWrapper)
    chunks = list(stream)
    assert all(c.choices for c in chunks), "the caller saw a usage-only chunk it never asked for"
    assert _posts(provider_server)[-1].body["stream_options"] == {"include_usage": True}
    assert instrumented.one().usage == OAI_EXPECTED


def test_litellm_stream_with_include_usage_keeps_the_callers_chunk(instrumented, oai_kw):
    chunks = list(litellm.completion(model="openai/gpt-4o-mini", messages=MSG, stream=True, extra_headers=OAI_USAGE,
                                     stream_options={"include_usage": True}, **oai_kw))
    assert chunks[-1].usage.prompt_tokens == 1200
    assert instrumented.one().usage == OAI_EXPECTED


async def test_litellm_astream_openai_route(instrumented, oai_kw):
    stream = await litellm.acompletion(model="openai/gpt-4o-mini", messages=MSG, stream=True,
                                       stream_options={"include_usage": True}, extra_headers=OAI_USAGE, **oai_kw)
    chunks = [c async for c in stream]
    assert chunks
    call = instrumented.one()
    assert call.usage == OAI_EXPECTED and call.stream


def test_litellm_stream_anthropic_route(instrumented, ant_kw, pipeline):
    pipeline.set(usage_hosts=())  # Anthropic streams always carry usage: nothing needs asking
    text = "".join(c.choices[0].delta.content or "" for c in litellm.completion(
        model="anthropic/claude-sonnet-4-5", messages=MSG, stream=True, extra_headers=ANT_USAGE, **ant_kw))
    assert text
    assert instrumented.one().usage == ANT_EXPECTED


async def test_litellm_astream_anthropic_route_with_tools(instrumented, ant_kw):
    headers = {**ANT_USAGE, "x-fake-scenario": SCENARIO_TOOL_CALL}
    stream = await litellm.acompletion(model="anthropic/claude-sonnet-4-5", messages=MSG, stream=True, tools=TOOLS,
                                       extra_headers=headers, **ant_kw)
    chunks = [c async for c in stream]
    assert any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
    assert instrumented.one().usage == ANT_EXPECTED


def test_litellm_stream_closed_early_by_caller(instrumented, oai_kw):
    stream = litellm.completion(model="openai/gpt-4o-mini", messages=MSG, stream=True, extra_headers=OAI_USAGE,
                                **oai_kw)
    next(iter(stream))
    stream.close()
    call = instrumented.one()
    assert call.end_reason == "closed_early" and call.stream


# --- embeddings, text completion, responses -------------------------------------------------------------------
def test_litellm_embedding(instrumented, oai_kw):
    result = litellm.embedding(model="openai/text-embedding-3-small", input=["hi there", "bye"],
                               extra_headers={HEADER_USAGE: "input=42"}, **oai_kw)
    assert len(result.data) == 2
    call = instrumented.one()
    assert (call.operation, call.usage, call.model) == ("embeddings", Usage(input=42, source="reported"),
                                                       "text-embedding-3-small")
    assert call.cost.total == Decimal("0.00000084")


async def test_litellm_aembedding(instrumented, oai_kw):
    await litellm.aembedding(model="openai/text-embedding-3-small", input="hi", extra_headers={HEADER_USAGE: "input=7"},
                             **oai_kw)
    assert instrumented.one().usage == Usage(input=7, source="reported")


def test_litellm_text_completion(instrumented, oai_kw):
    litellm.text_completion(model="openai/gpt-3.5-turbo-instruct", prompt="Say hi",
                            extra_headers={HEADER_USAGE: "input=12,output=30"}, **oai_kw)
    call = instrumented.one()
    assert call.usage == Usage(input=12, output=30, source="reported")


def test_litellm_text_completion_stream_is_one_call(instrumented, oai_kw, provider_server):
    """Its openai route opens the SDK request on the first read, outside the call: still one Call."""
    chunks = list(litellm.text_completion(model="openai/gpt-3.5-turbo-instruct", prompt="Say hi", stream=True,
                                          extra_headers={HEADER_USAGE: "input=12,output=30"}, **oai_kw))
    assert chunks and all(c.usage is None for c in chunks)  # the usage chunk we asked for stays hidden
    call = instrumented.one()
    assert (call.operation, call.usage.input, call.usage.output, call.stream) == ("text_completion", 12, 30, True)


async def test_litellm_atext_completion_stream_is_one_call(instrumented, oai_kw):
    stream = await litellm.atext_completion(model="openai/gpt-3.5-turbo-instruct", prompt="Say hi", stream=True,
                                            extra_headers={HEADER_USAGE: "input=12,output=30"}, **oai_kw)
    [c async for c in stream]
    call = instrumented.one()
    assert (call.usage.input, call.usage.output) == (12, 30)


@pytest.mark.xfail(strict=True, reason="LiteLLM's text-completion stream keeps no provider chunks to check: the "
                   "usage is counted as estimated even when the provider reported it")
def test_litellm_text_completion_stream_usage_is_reported(instrumented, oai_kw):
    list(litellm.text_completion(model="openai/gpt-3.5-turbo-instruct", prompt="Say hi", stream=True,
                                 extra_headers={HEADER_USAGE: "input=12,output=30"}, **oai_kw))
    assert instrumented.one().usage.source == "reported"


def test_litellm_responses_openai_route(instrumented, oai_kw):
    headers = {HEADER_USAGE: "input=10,cached=8,output=79,reasoning=40"}
    result = litellm.responses(model="openai/gpt-4.1-nano", input="Summarize this ticket", extra_headers=headers,
                               **oai_kw)
    assert result.output
    call = instrumented.one()
    assert call.operation == "responses"
    assert call.usage == Usage(input=10, cache_read=8, output=79, reasoning=40, source="reported")


async def test_litellm_aresponses_stream(instrumented, oai_kw):
    headers = {HEADER_USAGE: "input=10,cached=8,output=79,reasoning=40"}
    stream = await litellm.aresponses(model="openai/gpt-4.1-nano", input="hi", stream=True, extra_headers=headers,
                                      **oai_kw)
    events = [e async for e in stream]
    assert events
    call = instrumented.one()
    assert call.stream and call.usage == Usage(input=10, cache_read=8, output=79, reasoning=40, source="reported")


def test_litellm_responses_anthropic_route(instrumented, ant_kw):
    litellm.responses(model="anthropic/claude-sonnet-4-5", input="hi", extra_headers=ANT_USAGE, **ant_kw)
    call = instrumented.one()
    assert call.provider == "anthropic" and call.operation == "responses"
    u = call.usage
    assert (u.input, u.cache_read, u.cache_write, u.output, u.source) == (176, 1024, 500, 100, "reported")


@pytest.mark.xfail(strict=True, reason="LiteLLM's Responses bridge to Anthropic drops the 5m/1h cache-write split")
def test_litellm_responses_anthropic_route_keeps_the_1h_cache_write_split(instrumented, ant_kw):
    litellm.responses(model="anthropic/claude-sonnet-4-5", input="hi", extra_headers=ANT_USAGE, **ant_kw)
    assert instrumented.one().usage == ANT_EXPECTED


# --- budgets, errors, callbacks, attribution against the server -----------------------------------------------
class _Blocking:
    def check(self, call) -> None:
        raise BudgetExceeded("user-daily", "user", "alice", Decimal(1), Decimal(1), datetime.now(UTC))


@pytest.mark.parametrize("stream", [False, True])
def test_litellm_budget_blocks_before_any_request(instrumented, oai_kw, pipeline, provider_server, stream):
    pipeline.set(guard=_Blocking())
    with pytest.raises(BudgetExceeded):
        litellm.completion(model="openai/gpt-4o-mini", messages=MSG, stream=stream, **oai_kw)
    assert _posts(provider_server) == []
    assert instrumented.one().status == "blocked"


async def test_litellm_budget_blocks_acompletion(instrumented, ant_kw, pipeline, provider_server):
    pipeline.set(guard=_Blocking())
    with pytest.raises(BudgetExceeded):
        await litellm.acompletion(model="anthropic/claude-sonnet-4-5", messages=MSG, **ant_kw)
    assert _posts(provider_server) == []


def test_litellm_provider_error_is_one_error_call(instrumented, oai_kw):
    with pytest.raises(litellm.exceptions.BadRequestError):
        litellm.completion(model="openai/gpt-4o-mini", messages=MSG, extra_headers={"x-fake-scenario": "error-400"},
                           num_retries=0, **oai_kw)
    call = instrumented.one()
    assert call.status == "error"


def test_litellm_users_callbacks_are_kept_and_still_called(instrumented, oai_kw):
    seen: list[str] = []

    def mine(kwargs, response, start, end) -> None:
        seen.append(response.model)

    before = list(litellm.success_callback)
    litellm.success_callback = [*before, mine]
    try:
        litellm.completion(model="openai/gpt-4o-mini", messages=MSG, extra_headers=OAI_USAGE, **oai_kw)
        for _ in range(200):  # LiteLLM runs success callbacks on a worker thread
            if seen:
                break
            import time

            time.sleep(0.01)
    finally:
        litellm.success_callback = before
    assert seen == ["gpt-4o-mini-2024-07-18"]
    assert instrumented.one().usage == OAI_EXPECTED


async def test_litellm_each_user_exact_against_what_the_server_served(instrumented, oai_kw, ant_kw, provider_server):
    plan = [("alice", "openai", "input=100,cached=50,output=10"), ("bob", "anthropic", "input=7,cached=3,output=2"),
            ("alice", "anthropic", "input=11,cache_write=5,output=4"), ("carol", "openai", "input=9,output=1")]
    for user, route, usage in plan:
        headers = {HEADER_USAGE: usage, HEADER_KEY: user}
        with attribute(user=user):
            if route == "openai":
                stream = litellm.completion(model="openai/gpt-4o-mini", messages=MSG, stream=True,
                                            extra_headers=headers, **oai_kw)
                list(stream)
            else:
                await litellm.acompletion(model="anthropic/claude-sonnet-4-5", messages=MSG, extra_headers=headers,
                                          **ant_kw)
    served: dict[str, int] = defaultdict(int)
    for request in _posts(provider_server):
        counts = dict(part.split("=") for part in request.headers[HEADER_USAGE].split(","))
        served[request.headers[HEADER_KEY]] += sum(int(v) for v in counts.values())
    recorded: dict[str, int] = defaultdict(int)
    for call in instrumented.calls:
        assert call.usage.source == "reported"
        recorded[call.attribution.user] += call.usage.total
    assert recorded == served and len(instrumented.calls) == len(plan)


def test_litellm_mock_response_is_not_a_billed_call(instrumented):
    result = litellm.completion(model="openai/gpt-4o-mini", messages=MSG, mock_response="hello")
    assert result.choices[0].message.content == "hello"
    assert instrumented.calls == []


def test_litellm_cache_hit_costs_nothing():
    from spendmeter.providers.litellm import CHAT

    cached = litellm.ModelResponse(model="gpt-4o-mini", usage={"prompt_tokens": 10, "completion_tokens": 5})
    cached._hidden_params["cache_hit"] = True
    facts = CHAT.response(cached)
    assert facts.usage == Usage(source="reported") and facts.usage.total == 0
