"""The record that flows: who a call is for, what it used, what it cost, how it ended.

Read top to bottom: `Attribution` (who/what), `Usage` (disjoint token classes), `Cost` or `Unpriced`
(what pricing made of the usage), and `Call` (one per SDK method invocation, finished exactly once).
Sinks only ever read finished `Call` objects, so each sink can be tested with a hand-made one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

UNKNOWN = "unknown"

UsageSource = Literal["reported", "estimated", "missing", "sanitized"]  # sanitized: reported, but corrected
Status = Literal["ok", "error", "blocked"]
EndReason = Literal["completed", "error", "closed_early", "abandoned", "blocked"]


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who and what a call is for. Frozen: it is snapshotted when the call starts."""

    user: str | None = None
    feature: str | None = None
    agent: str | None = None
    conversation: str | None = None
    # Any other dimensions (`attribute(team="payments", tenant="acme")`): (name, value) pairs sorted by name,
    # a tuple so the record stays frozen and hashable.
    tags: tuple[tuple[str, str], ...] = ()

    def merged(self, inner: Attribution) -> Attribution:
        """`inner` wins wherever it says something (tag by tag); `self` fills the rest."""
        tags = self.tags
        if inner.tags:
            tags = tuple(sorted({**dict(self.tags), **dict(inner.tags)}.items())) if tags else inner.tags
        return Attribution(
            user=inner.user if inner.user is not None else self.user,
            feature=inner.feature if inner.feature is not None else self.feature,
            agent=inner.agent if inner.agent is not None else self.agent,
            conversation=inner.conversation if inner.conversation is not None else self.conversation,
            tags=tags,
        )

    def tag(self, name: str) -> str | None:
        for key, value in self.tags:
            if key == name:
                return value
        return None


@dataclass(slots=True)
class Usage:
    """Billed tokens in disjoint classes that add up to the billed total.

    `reasoning` is a subset of `output` (never added twice); the two cache-write classes are priced apart.
    """

    input: int = 0
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    output: int = 0
    reasoning: int = 0
    source: UsageSource = "missing"

    @property
    def cache_write(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    @property
    def prompt_total(self) -> int:
        """Every input-side token, cached or not (what GenAI semconv calls `input_tokens`)."""
        return self.input + self.cache_read + self.cache_write

    @property
    def total(self) -> int:
        return self.prompt_total + self.output


@dataclass(frozen=True, slots=True)
class Step:
    """One sampling step of a call that ran several (Anthropic `usage.iterations`), at the model that ran it."""

    model: str
    usage: Usage
    kind: str = "message"  # message, compaction, advisor_message, fallback_message, ...


@dataclass(frozen=True, slots=True)
class Cost:
    """USD per token class and in total, with where the prices came from.

    `total` = input + cache_read + cache_write + output + tools, except when the provider reported what it
    billed (`list_total` is then the list-price figure, and the classes are its split).
    """

    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    total: Decimal
    source: str  # e.g. "genai-prices 0.2.3" or "genai-prices 0.2.3+overrides:1a2b3c4d"
    price_entry: str  # the model/price entry that matched, for humans and audits
    currency: str = "USD"
    tools: Decimal = Decimal(0)  # server-side tool fees (web search, file search, ...), inside `total`
    tool_costs: tuple[tuple[str, Decimal], ...] = ()  # (tool, USD) per tool
    # Set when the response reported the billed amount (OpenRouter `usage.cost`): what list prices say.
    list_total: Decimal | None = None
    # Per model, when steps ran at several models: (model, that model's Cost). Their totals sum to `total`.
    parts: tuple[tuple[str, Cost], ...] = ()


@dataclass(frozen=True, slots=True)
class Unpriced:
    """No price could be found; no number is invented."""

    reason: str


@dataclass(slots=True, eq=False)
class Call:
    """One SDK method invocation (not one HTTP attempt), finished exactly once by the recorder."""

    provider: str  # gen_ai.provider.name: openai, anthropic, azure.ai.openai, aws.bedrock, gcp.vertex_ai
    operation: str  # chat, responses, embeddings, text_completion, messages
    request_model: str | None
    attribution: Attribution
    stream: bool = False
    batch: bool = False
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    start_monotonic: float = 0.0
    # Wall-clock nanoseconds, noted on the caller's thread (integers: no datetime built there); the recorder
    # turns them into `started_at` / `ended_at` when it finishes the call. 0: not noted, the datetimes rule.
    start_ns: int = 0
    end_ns: int = 0
    request_service_tier: str | None = None
    request_max_tokens: int | None = None
    deployment: str | None = None  # Azure deployment name, kept apart from the model
    server_address: str | None = None
    server_port: int | None = None

    response_model: str | None = None
    response_id: str | None = None
    service_tier: str | None = None  # what the response says it was served at
    finish_reasons: tuple[str, ...] = ()
    attempts: int = 1  # HTTP attempts, SDK retries included
    status: Status = "ok"
    error_type: str | None = None
    end_reason: EndReason | None = None
    usage: Usage = field(default_factory=Usage)
    steps: tuple[Step, ...] = ()  # sampling steps, when the response reports several (their sum is `usage`)
    tool_uses: tuple[tuple[str, int], ...] = ()  # billed server-side tool uses: (tool, count)
    billed_cost: Decimal | None = None  # what the provider's response says it billed, when it says
    billed_cost_source: str | None = None
    cost: Cost | Unpriced | None = None
    ended_at: datetime | None = None
    duration_s: float = 0.0
    capture: dict[str, Any] | None = None  # prompt/completion content, only when capture_content is on
    # Written by the recorder from the pipeline's label policy: `identity` at start (hashed user, shortened
    # values: what spans, the ledger and budgets show), `labels` at finish (bounded metric label values).
    identity: Attribution | None = None
    labels: Any = None  # telemetry.labels.Labels
    model_labels: dict[str, Any] | None = None  # Labels per other model a step ran at (metric series)
    span: Any = field(default=None, repr=False)  # the OpenTelemetry span the spans sink opened at start
    # One latch per call, shared with a stream's finalizer: whoever acquires it finishes the call.
    once: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def model(self) -> str:
        """The model the call is accounted to: what the provider said it served, else what was asked."""
        return self.response_model or self.request_model or UNKNOWN

    @property
    def who(self) -> Attribution:
        """Who the call is for, as every output shows it (user hashed when configured), else as given."""
        return self.identity if self.identity is not None else self.attribution

    @property
    def priced(self) -> bool:
        return isinstance(self.cost, Cost)

    @property
    def cost_usd(self) -> Decimal:
        return self.cost.total if isinstance(self.cost, Cost) else Decimal(0)
