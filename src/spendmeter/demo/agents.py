"""The demo's simulated traffic: who sends a message, and which SDK calls each agent makes for it.

A user message goes through three agents in turn: a `router` (cheap model), a specialist chosen by the
message's feature, and a `summarizer`; search and support messages sometimes also reach a `research` agent
(Gemini, through google-genai, when installed) and a `triage` agent (through LiteLLM, with `--litellm`).
Each agent is one function that returns the `Request`s it makes
(model, arguments, fake usage headers); nothing here sends them: `driver` does, through the real SDKs.
Keeping the two apart lets a test check the workload (same seed, same calls) without a server.

Everything random is drawn from seeded `random.Random` objects: `MessageSource` draws the messages, and
each message carries its own seed, so the calls a message makes do not depend on thread scheduling.

Against the local provider server the token counts come from `x-fake-usage` headers (see
`spendmeter.testing.scenarios`); against real providers (`--real`) no header is sent, every model is a
cheap one, and the counts are whatever the provider bills.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from random import Random
from typing import Any, Literal

from spendmeter.testing.scenarios import (
    HEADER_KEY,
    HEADER_SCENARIO,
    HEADER_USAGE,
    SCENARIO_ERROR_500,
    SCENARIO_RATE_LIMIT_ONCE,
    SCENARIO_STREAM_ERROR_MID,
)

FEATURES = ("support", "search", "coding", "summarization")
FEATURE_WEIGHTS = (0.35, 0.30, 0.15, 0.20)
HEAVY_USER = "heavy-user"
HEAVY_SHARE = 0.2  # of all messages: one user who pastes whole repositories into the coding assistant
UNKNOWN_MODEL = "acme-llm-1"  # a model no price list knows: moves llm_unpriced_requests_total
ZIPF_EXPONENT = 1.0

# How often things go wrong, per request (local server only).
P_ERROR_500 = 0.02  # sent without retries, so the caller sees the error
P_RATE_LIMIT = 0.03  # the first attempt gets a 429, the SDK's retry succeeds
P_STREAM_ERROR = 0.02  # an error event after a few chunks of a stream
P_UNKNOWN_MODEL = 0.05  # the router tries the unpriced model
P_PRIORITY = 0.15  # coding calls sent with service_tier="priority" (billed at about twice the rate)

# --real: the cheapest models of each provider, and short answers.
REAL_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-haiku-20240307"}
REAL_MAX_TOKENS = 48

Api = Literal["chat", "responses", "embeddings", "messages", "messages_stream", "gemini", "gemini_stream",
              "litellm"]

_PROMPTS = {
    "support": (
        "I was charged twice for my March invoice, can you refund one of them?",
        "How do I reset the password of a teammate who left the company?",
        "The export to CSV has been spinning for ten minutes, is something down?",
    ),
    "search": (
        "contracts signed with suppliers in Germany during 2024",
        "which dashboards show the churn rate per region",
        "onboarding checklist for new support engineers",
    ),
    "coding": (
        "Write a Python function that merges overlapping date ranges, with tests.",
        "Why does this SQL query do a sequential scan on the orders table?",
        "Refactor the retry loop in the payment client to use exponential backoff.",
    ),
    "summarization": (
        "Summarize the attached quarterly report for the board in five bullet points.",
        "Give me the action items from yesterday's incident review transcript.",
        "Condense this customer call recording transcript into a short note.",
    ),
}


@dataclass(frozen=True, slots=True)
class Message:
    """One user message; `seed` decides every call its agents make."""

    number: int
    user: str
    feature: str
    conversation: str
    use_async: bool
    seed: int


@dataclass(frozen=True, slots=True)
class Request:
    """One SDK call an agent makes. `stream=True` goes in `kwargs`; `retries=False` uses a no-retry client."""

    agent: str
    api: Api
    kwargs: dict[str, Any]
    retries: bool = True

    @property
    def provider(self) -> str:
        """The client the driver sends it with: an SDK, or LiteLLM (which routes by the model's prefix)."""
        if self.api.startswith(("gemini", "litellm")):
            return self.api.split("_")[0]
        return "anthropic" if self.api.startswith("messages") else "openai"


def _installed_providers() -> frozenset[str]:
    """openai and anthropic, plus gemini when google-genai is installed. LiteLLM is opt-in (`--litellm`):
    importing it takes seconds, which every demo start would pay."""
    try:
        gemini = importlib.util.find_spec("google.genai") is not None
    except (ImportError, ValueError):
        gemini = False
    return frozenset({"openai", "anthropic", *(("gemini",) if gemini else ())})


@dataclass(frozen=True, slots=True)
class Profile:
    """Local fake provider (token counts and failures chosen by us) or real providers (cheap models only)."""

    real: bool = False
    providers: frozenset[str] = field(default_factory=_installed_providers)

    def model(self, provider: str, local_model: str) -> str:
        return REAL_MODELS[provider] if self.real and local_model not in _CHEAP else local_model


_CHEAP = frozenset({"gpt-4o-mini", "gpt-4.1-nano", "text-embedding-3-small", "claude-3-haiku-20240307"})


class MessageSource:
    """Draws user messages: a Zipf-like spread over `users` regular users, plus the heavy user."""

    def __init__(self, users: int, seed: int, *, heavy_user: bool = True) -> None:
        self._rng = Random(seed)
        self.users = [f"user-{i:02d}" for i in range(1, users + 1)]
        self._weights = [1 / rank**ZIPF_EXPONENT for rank in range(1, users + 1)]
        self._heavy = heavy_user
        self._count = 0
        self._conversations: dict[str, tuple[str, int]] = {}  # user -> (conversation id, messages left)

    def next(self) -> Message:
        rng = self._rng
        self._count += 1
        if self._heavy and rng.random() < HEAVY_SHARE:
            user, feature = HEAVY_USER, "coding"
        else:
            user = rng.choices(self.users, self._weights)[0]
            feature = rng.choices(FEATURES, FEATURE_WEIGHTS)[0]
        conversation, left = self._conversations.get(user, ("", 0))
        if left <= 0:  # a conversation lasts a few messages, then the user starts a new one
            conversation, left = f"{user}-c{self._count:06d}", rng.randint(2, 6)
        self._conversations[user] = (conversation, left - 1)
        return Message(self._count, user, feature, conversation, rng.random() < 0.5, rng.getrandbits(63))


# --- agents: one function each, (message, rng, profile) -> the requests it makes ----------------------


def _fake(profile: Profile, rng: Random, key: str, *, retryable: bool = True, stream: bool = False,
          **usage: int) -> tuple[dict[str, str], bool]:
    """The `x-fake-*` headers for one request (none for real providers), and whether retries are allowed."""
    if profile.real:
        return {}, True
    headers = {HEADER_USAGE: ",".join(f"{k}={v}" for k, v in usage.items() if v)}
    roll = rng.random()
    if roll < P_ERROR_500:
        headers[HEADER_SCENARIO] = SCENARIO_ERROR_500
        return headers, False
    if roll < P_ERROR_500 + P_RATE_LIMIT and retryable:
        headers[HEADER_SCENARIO] = SCENARIO_RATE_LIMIT_ONCE
        headers[HEADER_KEY] = key
    elif stream and roll < P_ERROR_500 + P_RATE_LIMIT + P_STREAM_ERROR:
        headers[HEADER_SCENARIO] = SCENARIO_STREAM_ERROR_MID
    return headers, True


def _max_tokens(profile: Profile, output: int) -> int:
    return REAL_MAX_TOKENS if profile.real else output + 256


def _prompt(msg: Message, rng: Random) -> str:
    return rng.choice(_PROMPTS[msg.feature])


def router_agent(msg: Message, rng: Random, profile: Profile) -> list[Request]:
    """Classifies the message with a cheap chat model (now and then a new, unpriced one on trial)."""
    model = UNKNOWN_MODEL if not profile.real and rng.random() < P_UNKNOWN_MODEL else "gpt-4o-mini"
    output = rng.randint(4, 16)
    headers, retries = _fake(profile, rng, f"{msg.conversation}-{msg.number}-router",
                             input=rng.randint(150, 450), output=output)
    kwargs = {
        "model": profile.model("openai", model),
        "messages": [
            {"role": "system", "content": f"Route the message to one of: {', '.join(FEATURES)}."},
            {"role": "user", "content": _prompt(msg, rng)},
        ],
        "max_tokens": _max_tokens(profile, output),
        "extra_headers": headers,
    }
    return [Request("router", "chat", kwargs, retries)]


def support_agent(msg: Message, rng: Random, profile: Profile) -> list[Request]:
    """Claude Sonnet over a long cached system prompt (the help-center articles), streamed."""
    hit = rng.random() < 0.8  # the prompt cache is usually warm
    context = rng.randint(2000, 6000)
    output = rng.randint(150, 700)
    headers, retries = _fake(
        profile, rng, f"{msg.conversation}-{msg.number}-support", stream=True,
        input=rng.randint(50, 300), cached=context if hit else 0, cache_write=0 if hit else context, output=output,
    )
    kwargs = {
        "model": profile.model("anthropic", "claude-3-5-sonnet-20240620"),
        "max_tokens": _max_tokens(profile, output),
        "system": [{"type": "text", "text": "You are the support assistant. Help-center articles follow.",
                    "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": _prompt(msg, rng)}],
        "extra_headers": headers,
    }
    return [Request("support", "messages_stream", kwargs, retries)]


def search_agent(msg: Message, rng: Random, profile: Profile) -> list[Request]:
    """Embeds the query, then answers from the retrieved passages with gpt-4.1-nano (Responses API)."""
    query = _prompt(msg, rng)
    emb_headers, emb_retries = _fake(profile, rng, f"{msg.conversation}-{msg.number}-embed",
                                     input=rng.randint(8, 60))
    output = rng.randint(60, 250)
    stream = rng.random() < 0.5
    headers, retries = _fake(profile, rng, f"{msg.conversation}-{msg.number}-search", stream=stream,
                             input=rng.randint(400, 1500), output=output)
    answer = {
        "model": profile.model("openai", "gpt-4.1-nano"),
        "instructions": "Answer from the passages; cite them.",
        "input": f"Passages: ...\n\nQuestion: {query}",
        "max_output_tokens": _max_tokens(profile, output),
        "extra_headers": headers,
    }
    if stream:
        answer["stream"] = True
    embed = {"model": "text-embedding-3-small", "input": [query], "extra_headers": emb_headers}
    return [Request("search", "embeddings", embed, emb_retries), Request("search", "responses", answer, retries)]


def coding_agent(msg: Message, rng: Random, profile: Profile) -> list[Request]:
    """gpt-5 with reasoning; the heavy user sends whole repositories as context."""
    if msg.user == HEAVY_USER:
        prompt, cached, output = rng.randint(120_000, 200_000), 0, rng.randint(2000, 5000)
    else:
        prompt, output = rng.randint(800, 4000), rng.randint(300, 2500)
        cached = rng.choice((0, 0, 1024, 2048))
    stream = rng.random() < 0.4
    headers, retries = _fake(profile, rng, f"{msg.conversation}-{msg.number}-coding", stream=stream,
                             input=prompt, cached=cached, output=output, reasoning=int(output * rng.uniform(0.4, 0.8)))
    kwargs: dict[str, Any] = {
        "model": profile.model("openai", "gpt-5"),
        "messages": [{"role": "user", "content": _prompt(msg, rng)}],
        "max_completion_tokens": _max_tokens(profile, output),
        "extra_headers": headers,
    }
    if not profile.real:
        kwargs["reasoning_effort"] = "medium"
        if rng.random() < P_PRIORITY:
            kwargs["service_tier"] = "priority"
    if stream:
        kwargs["stream"] = True
    return [Request("coding", "chat", kwargs, retries)]


def summarization_agent(msg: Message, rng: Random, profile: Profile) -> list[Request]:
    """Claude Haiku over a long document, sometimes streamed with `create(stream=True)`."""
    output = rng.randint(100, 400)
    stream = rng.random() < 0.3
    headers, retries = _fake(profile, rng, f"{msg.conversation}-{msg.number}-summarize", stream=stream,
                             input=rng.randint(1500, 6000), output=output)
    kwargs: dict[str, Any] = {
        "model": profile.model("anthropic", "claude-3-haiku-20240307"),
        "max_tokens": _max_tokens(profile, output),
        "messages": [{"role": "user", "content": _prompt(msg, rng)}],
        "extra_headers": headers,
    }
    if stream:
        kwargs["stream"] = True
    return [Request("summarization", "messages", kwargs, retries)]


def summarizer_agent(msg: Message, rng: Random, profile: Profile) -> list[Request]:
    """Writes the conversation's running summary with a cheap model, streamed (usage asked for)."""
    output = rng.randint(40, 150)
    headers, retries = _fake(profile, rng, f"{msg.conversation}-{msg.number}-summarizer", stream=True,
                             input=rng.randint(300, 1200), output=output)
    kwargs = {
        "model": profile.model("openai", "gpt-4o-mini"),
        "messages": [{"role": "system", "content": "Update the running summary of this conversation."},
                     {"role": "user", "content": _prompt(msg, rng)}],
        "max_tokens": _max_tokens(profile, output),
        "stream": True,
        "extra_headers": headers,
    }
    return [Request("summarizer", "chat", kwargs, retries)]


Agent = Callable[[Message, Random, Profile], list[Request]]
SPECIALISTS: dict[str, Agent] = {
    "support": support_agent,
    "search": search_agent,
    "coding": coding_agent,
    "summarization": summarization_agent,
}


def research_agent(msg: Message, rng: Random, profile: Profile) -> list[Request]:
    """Gemini (google-genai) reads the search results again over a cached corpus, sometimes streamed."""
    if msg.feature != "search" or rng.random() < 0.5:
        return []
    output = rng.randint(80, 300)
    stream = rng.random() < 0.5
    headers, retries = _fake(profile, rng, f"{msg.conversation}-{msg.number}-research", stream=stream, retryable=False,
                             input=rng.randint(300, 1200), cached=rng.choice((0, 4096, 8192)), output=output,
                             reasoning=rng.randint(0, output // 2))
    kwargs = {"model": "gemini-2.5-flash", "contents": _prompt(msg, rng), "extra_headers": headers,
              "config": {"max_output_tokens": _max_tokens(profile, output)}}
    return [Request("research", "gemini_stream" if stream else "gemini", kwargs, retries)]


def triage_agent(msg: Message, rng: Random, profile: Profile) -> list[Request]:
    """An agent built on a framework that calls LiteLLM: it tags support tickets, via anthropic/ or openai/."""
    if msg.feature != "support" or rng.random() < 0.5:
        return []
    output = rng.randint(10, 60)
    route = rng.choice(("anthropic/claude-3-haiku-20240307", "openai/gpt-4o-mini"))
    stream = rng.random() < 0.3
    headers, retries = _fake(profile, rng, f"{msg.conversation}-{msg.number}-triage", stream=stream, retryable=False,
                             input=rng.randint(200, 800), output=output)
    kwargs: dict[str, Any] = {"model": route, "messages": [{"role": "user", "content": _prompt(msg, rng)}],
                              "max_tokens": _max_tokens(profile, output), "extra_headers": headers}
    if stream:
        kwargs["stream"] = True
    return [Request("triage", "litellm", kwargs, retries)]


# Agents that run after the summarizer, each with a random stream of its own, so adding one changes no
# other agent's calls for a seed.
EXTRAS: tuple[Agent, ...] = (research_agent, triage_agent)


def conversation_requests(msg: Message, profile: Profile) -> list[Request]:
    """Every call one message causes, in order: router, specialist, summarizer, then the extra agents."""
    rng = Random(msg.seed)
    requests = [*router_agent(msg, rng, profile), *SPECIALISTS[msg.feature](msg, rng, profile),
                *summarizer_agent(msg, rng, profile)]
    for index, agent in enumerate(EXTRAS, start=1):
        requests += agent(msg, Random(msg.seed + index), profile)
    return [r for r in requests if r.provider in profile.providers]
