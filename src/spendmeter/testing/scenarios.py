"""What the fake provider answers: scenario headers and the deterministic reply derived from a request.

Tests steer the server with request headers (pass them with the SDKs' `extra_headers=`), and read every
knob from the constants below, so an assertion and the server never disagree about a number:

- `x-fake-usage: input=176,cached=1024,output=100` sets token counts (keys in `USAGE_KEYS`). Keys left out
  keep their derived value (`input`, `output`) or 0 (the cache and reasoning keys).
- `x-fake-tier: priority` sets the service tier reported back.
- `x-fake-scenario: <one of SCENARIOS>` picks an error, a stream failure, a tool call or a slow answer.
- `x-fake-key: <any>` names the caller for `rate-limit-once` (first request per key gets a 429).
- `x-fake-batch-errors: id1,id2` makes those batch `custom_id`s come back `errored`.

Without `x-fake-usage` the counts come from the request itself: input = ceil(characters / 4) of the
prompt text (at least 1), output = min(max tokens or `DEFAULT_MAX_OUTPUT`, 8 + input % 13).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

# The fake provider answers both wire formats on one local address, which no provider table knows: map it
# the way a user maps a local server. OpenAI's base URL has the `/v1` path, Anthropic's has none.
LOCAL_PROVIDERS: dict[str, str] = {"127.0.0.1/v1": "openai", "127.0.0.1": "anthropic"}
LOCAL_PROVIDERS_ENV = ",".join(f"{k}={v}" for k, v in LOCAL_PROVIDERS.items())  # for SPENDMETER_PROVIDERS

HEADER_USAGE = "x-fake-usage"
HEADER_TIER = "x-fake-tier"
HEADER_SCENARIO = "x-fake-scenario"
HEADER_KEY = "x-fake-key"
HEADER_BATCH_ERRORS = "x-fake-batch-errors"
# OpenAI-compatible hosts that report stream usage their own way (see `STREAM_USAGE_MODES`).
HEADER_STREAM_USAGE = "x-fake-stream-usage"
HEADER_BILLED_COST = "x-fake-billed-cost"  # OpenRouter: `usage.cost`, a decimal number of USD
# Anthropic multi-step usage: `kind[@model]:key=int,...;...` entries of `usage.iterations` (keys as in
# `x-fake-usage`), e.g. "compaction:input=180000,output=3500;message:input=23000,output=1000".
HEADER_ITERATIONS = "x-fake-iterations"
HEADER_SERVER_TOOLS = "x-fake-server-tools"  # Anthropic `usage.server_tool_use`: "web_search=3,web_fetch=1"

# How a chat stream reports usage: "asked" (OpenAI: only with stream_options.include_usage, then a usage-only
# final chunk and `"usage": null` on every other chunk), "always" (a usage-only final chunk, asked or not:
# OpenRouter), "last" (usage on the chunk that carries finish_reason: Mistral, Together, Fireworks, z.ai),
# "choice" (inside that chunk's choice: Moonshot).
STREAM_USAGE_MODES = ("asked", "always", "last", "choice")

SCENARIO_OK = "ok"
SCENARIO_ERROR_400 = "error-400"
SCENARIO_ERROR_500 = "error-500"
SCENARIO_OVERLOADED = "overloaded-529"  # OpenAI has no 529: it gets a 503 `server_error` instead
SCENARIO_RATE_LIMIT_ONCE = "rate-limit-once"
SCENARIO_STREAM_ERROR_MID = "stream-error-mid"
SCENARIO_STREAM_CUT = "stream-cut"
SCENARIO_TOOL_CALL = "tool-call"
SCENARIO_SLOW = "slow"
SCENARIOS = frozenset(
    {
        SCENARIO_OK,
        SCENARIO_ERROR_400,
        SCENARIO_ERROR_500,
        SCENARIO_OVERLOADED,
        SCENARIO_RATE_LIMIT_ONCE,
        SCENARIO_STREAM_ERROR_MID,
        SCENARIO_STREAM_CUT,
        SCENARIO_TOOL_CALL,
        SCENARIO_SLOW,
    }
)

USAGE_KEYS = ("input", "cached", "cache_write", "cache_write_1h", "output", "reasoning")
SLOW_SECONDS = 0.2
# Stream failures happen after this many content chunks (text or tool-argument deltas) reached the client.
CHUNKS_BEFORE_FAILURE = 2
# Sent on 429/5xx/529 so the SDKs' automatic retries wait 1 ms instead of their ~0.5 s backoff.
RETRY_AFTER_MS = 1
DEFAULT_MAX_OUTPUT = 60
MIN_WORDS, MAX_WORDS = 3, 12

# OpenAI answers with the dated snapshot behind an alias; Anthropic echoes what was asked.
OPENAI_MODEL_SNAPSHOTS: dict[str, str] = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "o1": "o1-2024-12-17",
    "o3": "o3-2025-04-16",
    "o3-mini": "o3-mini-2025-01-31",
    "o4-mini": "o4-mini-2025-04-16",
    "gpt-5": "gpt-5-2025-08-07",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "gpt-5-nano": "gpt-5-nano-2025-08-07",
    "text-embedding-3-small": "text-embedding-3-small",
}

_WORDS = (
    "the budget holds steady while agents route support tickets and summarize invoices for every team "
    "quickly cheaply clearly with cached context and careful tools"
).split()
# Keys whose string values are structure, not prompt text.
_NOT_TEXT = frozenset({"role", "type", "model", "id", "tool_call_id", "tool_use_id", "cache_control", "name"})


class ScenarioError(ValueError):
    """A malformed `x-fake-*` header: the server answers 400 in the provider's error shape."""


@dataclass(frozen=True, slots=True)
class FakeUsage:
    """Token counts of one reply, in the scenario header's terms (disjoint, like `spendmeter.call.Usage`)."""

    input: int = 0
    cached: int = 0
    cache_write: int = 0  # Anthropic 5-minute write; OpenAI reports it as `cache_write_tokens`
    cache_write_1h: int = 0
    output: int = 0  # includes reasoning
    reasoning: int = 0

    @property
    def prompt_total(self) -> int:
        return self.input + self.cached + self.cache_write + self.cache_write_1h


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event. `content` marks the text/argument deltas that stream failures count."""

    data: dict[str, Any] | str  # str only for OpenAI's literal `[DONE]`
    name: str | None = None
    content: bool = False


@dataclass(slots=True)
class Reply:
    """What an endpoint answers: a JSON body, JSON lines, or a stream of events (then `plan` is set)."""

    body: Any = None
    status: int = 200
    events: list[Event] | None = None
    plan: Plan | None = None
    jsonl: bool = False


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str  # JSON text, as both providers stream it


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a wire-format module needs to write one reply."""

    scenario: str
    model: str
    words: tuple[str, ...]
    usage: FakeUsage
    tier: str | None  # raw: the header's value, else the request's `service_tier`
    tool: ToolCall | None
    hit_max_tokens: bool
    key: str

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def text_pieces(self) -> list[str]:
        """The text cut into stream deltas, one word each, spaces kept so they join back exactly."""
        return [w if i == 0 else " " + w for i, w in enumerate(self.words)]

    def argument_pieces(self) -> list[str]:
        """Tool arguments cut into at least `CHUNKS_BEFORE_FAILURE` + 1 deltas."""
        assert self.tool is not None
        args = self.tool.arguments
        size = max(1, math.ceil(len(args) / 3))
        return [args[i : i + size] for i in range(0, len(args), size)]


def parse_usage_header(value: str | None) -> dict[str, int]:
    if not value:
        return {}
    out: dict[str, int] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        key, sep, raw = part.partition("=")
        key = key.strip()
        if not sep or key not in USAGE_KEYS:
            raise ScenarioError(f"{HEADER_USAGE}: bad entry {part!r}; use key=int with keys {USAGE_KEYS}")
        try:
            out[key] = int(raw.strip())
        except ValueError:
            raise ScenarioError(f"{HEADER_USAGE}: {key} must be an integer, got {raw!r}") from None
        if out[key] < 0:
            raise ScenarioError(f"{HEADER_USAGE}: {key} must not be negative")
    return out


def scenario_of(headers: Mapping[str, str]) -> str:
    scenario = headers.get(HEADER_SCENARIO, SCENARIO_OK).strip() or SCENARIO_OK
    if scenario not in SCENARIOS:
        raise ScenarioError(f"{HEADER_SCENARIO}: unknown scenario {scenario!r}; known: {sorted(SCENARIOS)}")
    return scenario


def prompt_chars(body: Mapping[str, Any]) -> int:
    total = 0
    for key in ("messages", "input", "prompt", "system", "instructions"):
        if key in body:
            total += _text_len(body[key])
    return total


def _text_len(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_len(v) for v in value)
    if isinstance(value, dict):
        return sum(_text_len(v) for k, v in value.items() if k not in _NOT_TEXT)
    return 0  # token arrays, numbers and nulls carry no text


def tokens_for_chars(chars: int) -> int:
    return max(1, math.ceil(chars / 4))


def max_output_of(body: Mapping[str, Any]) -> int | None:
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = body.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def openai_model(model: str) -> str:
    return OPENAI_MODEL_SNAPSHOTS.get(model, model)


def make_plan(body: Mapping[str, Any], headers: Mapping[str, str], *, model: str) -> Plan:
    """The deterministic reply for `body`; `headers` must already be lower-cased."""
    scenario = scenario_of(headers)
    chars = prompt_chars(body)
    derived_input = tokens_for_chars(chars)
    limit = max_output_of(body)
    derived_output = min(limit or DEFAULT_MAX_OUTPUT, 8 + derived_input % 13)
    usage = replace(
        FakeUsage(input=derived_input, output=derived_output), **parse_usage_header(headers.get(HEADER_USAGE))
    )

    # The text must not depend on how usage is reported (`stream_options`): a stream that asked for usage
    # carries the same words as one that did not, so a caller's chunks can be compared run to run.
    content = {k: v for k, v in body.items() if k != "stream_options"}
    seed = zlib.crc32(json.dumps(content, sort_keys=True, default=str).encode())
    n_words = max(MIN_WORDS, min(MAX_WORDS, usage.output // 2))
    words = tuple(_WORDS[(seed + 7 * i) % len(_WORDS)] for i in range(n_words))

    tools = body.get("tools")
    tool = None
    if scenario == SCENARIO_TOOL_CALL or (
        isinstance(tools, list) and tools and body.get("tool_choice") != "none"
    ):
        tool = _tool_call(tools if isinstance(tools, list) else [])

    tier = headers.get(HEADER_TIER) or (
        body.get("service_tier") if isinstance(body.get("service_tier"), str) else None
    )
    return Plan(
        scenario=scenario,
        model=model,
        words=words,
        usage=usage,
        tier=tier,
        tool=tool,
        hit_max_tokens=limit is not None and usage.output >= limit,
        key=headers.get(HEADER_KEY, ""),
    )


def _tool_call(tools: list[Any]) -> ToolCall:
    """Call the first declared tool with a value for each required (else the first) property."""
    first = tools[0] if tools and isinstance(tools[0], dict) else {}
    # Chat nests under "function"; Responses and Anthropic keep name and schema at the top.
    spec = first.get("function", first) if isinstance(first.get("function"), dict) else first
    name = spec.get("name") or "get_weather"
    schema = spec.get("parameters") or spec.get("input_schema") or {}
    props = schema.get("properties") or {"location": {"type": "string"}}
    wanted = [p for p in schema.get("required") or [] if p in props] or list(props)[:1]
    sample = {"string": "Paris", "integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}
    args = {p: sample.get(str((props.get(p) or {}).get("type")), "Paris") for p in wanted}
    return ToolCall(name=str(name), arguments=json.dumps(args))


@dataclass(frozen=True, slots=True)
class Iteration:
    """One `usage.iterations` entry the fake Anthropic API reports."""

    kind: str
    model: str | None
    usage: FakeUsage


def stream_usage_mode(headers: Mapping[str, str]) -> str:
    mode = headers.get(HEADER_STREAM_USAGE, "asked").strip() or "asked"
    if mode not in STREAM_USAGE_MODES:
        raise ScenarioError(f"{HEADER_STREAM_USAGE}: unknown mode {mode!r}; known: {STREAM_USAGE_MODES}")
    return mode


def billed_cost_of(headers: Mapping[str, str]) -> float | None:
    value = headers.get(HEADER_BILLED_COST)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise ScenarioError(f"{HEADER_BILLED_COST}: expected a number of USD, got {value!r}") from None


def iterations_of(headers: Mapping[str, str]) -> list[Iteration]:
    out: list[Iteration] = []
    for part in filter(None, (p.strip() for p in headers.get(HEADER_ITERATIONS, "").split(";"))):
        head, sep, counts = part.partition(":")
        if not sep:
            raise ScenarioError(f"{HEADER_ITERATIONS}: expected kind[@model]:key=int,..., got {part!r}")
        kind, _, model = head.strip().partition("@")
        out.append(Iteration(kind, model or None, replace(FakeUsage(), **parse_usage_header(counts))))
    return out


def server_tools_of(headers: Mapping[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in headers.get(HEADER_SERVER_TOOLS, "").split(","))):
        name, sep, raw = part.partition("=")
        if not sep or not raw.strip().isdigit():
            raise ScenarioError(f"{HEADER_SERVER_TOOLS}: expected tool=int pairs, got {part!r}")
        out[name.strip()] = int(raw)
    return out
