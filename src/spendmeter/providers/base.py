"""The provider contract: adapters turn SDK objects into facts; only the recorder turns facts into a `Call`.

An adapter knows one API's wire format and nothing about sinks, budgets or the pipeline:
- `request(client, kwargs, options)` → `RequestFacts`: provider (from the endpoint), model, stream, tier, the
  request's own user id, and, when the adapter changes the request (asking a stream for usage), the kwargs
  to send instead plus the rule that hides the extra chunk from the caller;
- `response(obj)` → `ResponseFacts`: usage in disjoint classes, the served model, id, tier, finish reasons,
  and an error when the response itself says the call failed;
- `accumulator()` → an `Accumulator` that observes a stream's events and gives the same `ResponseFacts`.
Hooks (spendmeter.instrument) are provider-blind: they call these three and hand the facts to the recorder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from spendmeter.call import Step, Usage


@dataclass(slots=True)
class RequestFacts:
    provider: str  # gen_ai.provider.name, from the endpoint the client talks to
    operation: str  # chat, responses, embeddings, text_completion, messages
    model: str | None
    stream: bool = False
    batch: bool = False
    user: str | None = None  # the request's own user id (OpenAI `user`, Anthropic `metadata.user_id`)
    service_tier: str | None = None
    max_tokens: int | None = None
    deployment: str | None = None  # Azure: the deployment the `model` argument names
    server_address: str | None = None
    server_port: int | None = None
    capture: dict[str, Any] | None = None  # prompt content, only when the pipeline captures content
    send_kwargs: dict[str, Any] | None = None  # the kwargs to send instead of the caller's, when changed
    hide: Callable[[Any], bool] | None = None  # a stream chunk that exists only because we asked for it


@dataclass(slots=True)
class ResponseFacts:
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    response_id: str | None = None
    service_tier: str | None = None
    finish_reasons: tuple[str, ...] = ()
    error_type: str | None = None  # the response says the call failed (a stream's error event, ...)
    # Several sampling steps in one call (Anthropic `usage.iterations`): each with its own model and usage.
    # `usage` is then their sum; pricing prices each step at its own model.
    steps: tuple[Step, ...] = ()
    tools: tuple[tuple[str, int], ...] = ()  # billed server-side tool uses: (tool, count), e.g. web_search
    billed_cost: Decimal | None = None  # USD the response itself says it was billed (OpenRouter usage.cost)
    billed_cost_source: str | None = None  # where that figure came from, e.g. "openrouter usage.cost"


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """What the pipeline tells adapters about the request side."""

    usage_hosts: tuple[str, ...] = ()  # hosts that accept `stream_options.include_usage`, beyond the table's
    capture_content: bool = False
    providers: Mapping[str, str] = field(default_factory=dict)  # the user's endpoint -> provider mapping


class Accumulator(Protocol):
    """Observes each event of one stream (counters only, never text) and says what the stream used."""

    def observe(self, event: Any) -> None: ...

    def facts(self) -> ResponseFacts: ...


class ProviderAdapter(Protocol):
    """`read_later`: True when `response()` may read the SDK's object on the finisher thread, after the
    caller has it (the object is the SDK's own immutable-in-practice model, not one a library edits later);
    its streams' `Accumulator.facts()` then runs there too, so `observe()` may keep the chunks' objects."""

    operation: str

    def request(self, client: Any, kwargs: dict[str, Any], options: RequestOptions) -> RequestFacts: ...

    def response(self, obj: Any) -> ResponseFacts: ...

    def accumulator(self) -> Accumulator: ...


class ItemsAdapter(Protocol):
    """For a method that returns many finished requests at once (batch results): each item is one call."""

    operation: str

    def item_request(self, resource: Any, item: Any, options: RequestOptions | None = None) -> RequestFacts: ...

    def item_response(self, item: Any) -> ResponseFacts: ...
