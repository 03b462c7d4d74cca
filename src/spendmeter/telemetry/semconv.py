"""Every span and metric attribute name spendmeter writes, in one place.

Three blocks, in order of authority:
1. names taken from the installed `opentelemetry.semconv` modules (GenAI, user, error, server, OpenAI);
2. DRAFT names for cost, which no released semantic convention defines yet (see docs/telemetry.md);
3. `spendmeter.*` names for what is ours alone (feature, usage source, end reason, ...).
The GenAI semconv metric names are here too; our own metric names live in telemetry.contract.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes import (
    gen_ai_attributes as _gen_ai,
)
from opentelemetry.semconv._incubating.attributes import (
    openai_attributes as _openai,
)
from opentelemetry.semconv._incubating.attributes import (
    user_attributes as _user,
)
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as _gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes as _error
from opentelemetry.semconv.attributes import server_attributes as _server

# --- 1. From opentelemetry.semconv ------------------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = _gen_ai.GEN_AI_OPERATION_NAME
GEN_AI_PROVIDER_NAME: Final = _gen_ai.GEN_AI_PROVIDER_NAME
GEN_AI_REQUEST_MODEL: Final = _gen_ai.GEN_AI_REQUEST_MODEL
GEN_AI_REQUEST_MAX_TOKENS: Final = _gen_ai.GEN_AI_REQUEST_MAX_TOKENS
GEN_AI_REQUEST_STREAM: Final = _gen_ai.GEN_AI_REQUEST_STREAM
GEN_AI_RESPONSE_MODEL: Final = _gen_ai.GEN_AI_RESPONSE_MODEL
GEN_AI_RESPONSE_ID: Final = _gen_ai.GEN_AI_RESPONSE_ID
GEN_AI_RESPONSE_FINISH_REASONS: Final = _gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
GEN_AI_AGENT_NAME: Final = _gen_ai.GEN_AI_AGENT_NAME
GEN_AI_CONVERSATION_ID: Final = _gen_ai.GEN_AI_CONVERSATION_ID
GEN_AI_TOKEN_TYPE: Final = _gen_ai.GEN_AI_TOKEN_TYPE

# `input_tokens` counts every input-side token, cached or not; the cache classes are subsets of it.
GEN_AI_USAGE_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
GEN_AI_USAGE_OUTPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
# semconv says `cache_creation`; the Anthropic SDK's own span says `gen_ai.usage.cache_write.input_tokens`.
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS

GEN_AI_INPUT_MESSAGES: Final = _gen_ai.GEN_AI_INPUT_MESSAGES
GEN_AI_OUTPUT_MESSAGES: Final = _gen_ai.GEN_AI_OUTPUT_MESSAGES
GEN_AI_SYSTEM_INSTRUCTIONS: Final = _gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS

OPENAI_REQUEST_SERVICE_TIER: Final = _openai.OPENAI_REQUEST_SERVICE_TIER
OPENAI_RESPONSE_SERVICE_TIER: Final = _openai.OPENAI_RESPONSE_SERVICE_TIER

USER_ID: Final = _user.USER_ID
ERROR_TYPE: Final = _error.ERROR_TYPE
ERROR_TYPE_OTHER: Final = _error.ErrorTypeValues.OTHER.value
SERVER_ADDRESS: Final = _server.SERVER_ADDRESS
SERVER_PORT: Final = _server.SERVER_PORT

TOKEN_TYPE_INPUT: Final = _gen_ai.GenAiTokenTypeValues.INPUT.value
TOKEN_TYPE_OUTPUT: Final = _gen_ai.GenAiTokenTypeValues.OUTPUT.value

GEN_AI_CLIENT_TOKEN_USAGE: Final = _gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE
GEN_AI_CLIENT_OPERATION_DURATION: Final = _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION
# The bucket boundaries the GenAI metric conventions recommend (the Python module carries no advice).
# 1, 4, 16, ... 4**13 tokens and 0.01, 0.02, ... 81.92 seconds.
TOKEN_USAGE_BUCKETS: Final = tuple(4**i for i in range(14))
OPERATION_DURATION_BUCKETS: Final = tuple(round(0.01 * 2**i, 2) for i in range(14))

# Our operation names -> `gen_ai.operation.name`. Anthropic Messages and OpenAI Responses are both
# chat-style generation; the Anthropic SDK's own span also says "chat" for messages.create.
_OPERATION_NAMES: Final = {
    "chat": _gen_ai.GenAiOperationNameValues.CHAT.value,
    "messages": _gen_ai.GenAiOperationNameValues.CHAT.value,
    "responses": _gen_ai.GenAiOperationNameValues.CHAT.value,
    "text_completion": _gen_ai.GenAiOperationNameValues.TEXT_COMPLETION.value,
    "completions": _gen_ai.GenAiOperationNameValues.TEXT_COMPLETION.value,
    "embeddings": _gen_ai.GenAiOperationNameValues.EMBEDDINGS.value,
}


def operation_name(operation: str) -> str:
    """The `gen_ai.operation.name` for one of our operation names (unknown ones pass through)."""
    return _OPERATION_NAMES.get(operation, operation)


def error_type(status: str, error_type: str | None) -> str:
    """`error.type` of a call that did not end ok: its exception's name, else `blocked` or `_OTHER`."""
    if error_type:
        return error_type
    return status if status == "blocked" else ERROR_TYPE_OTHER


# Providers whose service tier has a semconv attribute (`openai.request/response.service_tier`).
OPENAI_PROVIDERS: Final = frozenset({"openai", "azure.ai.openai"})

# --- 2. DRAFTS: cost, not in any released semconv yet ------------------------------------------------------
# Named after the upstream GenAI cost proposal (`gen_ai.usage.cost.*`). If upstream settles on other names,
# only this block changes (with a migration note in docs/telemetry.md).
GEN_AI_USAGE_COST_AMOUNT: Final = "gen_ai.usage.cost.amount"  # float, in the currency below
GEN_AI_USAGE_COST_CURRENCY: Final = "gen_ai.usage.cost.currency"  # ISO 4217 code, always "USD" today
GEN_AI_USAGE_COST_SOURCE: Final = "gen_ai.usage.cost.source"  # price library version (+ overrides hash)
# --- end of drafts ------------------------------------------------------------------------------------------

# --- 3. spendmeter's own ------------------------------------------------------------------------------------
SPENDMETER_FEATURE: Final = "spendmeter.feature"
SPENDMETER_OPERATION: Final = "spendmeter.operation"  # our finer name: messages, responses, chat, ...
SPENDMETER_BATCH: Final = "spendmeter.batch"
SPENDMETER_DEPLOYMENT: Final = "spendmeter.deployment"
SPENDMETER_REQUEST_SERVICE_TIER: Final = "spendmeter.request.service_tier"  # non-OpenAI providers
SPENDMETER_RESPONSE_SERVICE_TIER: Final = "spendmeter.response.service_tier"  # non-OpenAI providers
SPENDMETER_USAGE_SOURCE: Final = "spendmeter.usage.source"
SPENDMETER_CACHE_WRITE_5M_TOKENS: Final = "spendmeter.usage.cache_write_5m.input_tokens"
SPENDMETER_CACHE_WRITE_1H_TOKENS: Final = "spendmeter.usage.cache_write_1h.input_tokens"
SPENDMETER_ATTEMPTS: Final = "spendmeter.attempts"
SPENDMETER_STATUS: Final = "spendmeter.status"
SPENDMETER_END_REASON: Final = "spendmeter.end_reason"
SPENDMETER_UNPRICED_REASON: Final = "spendmeter.unpriced.reason"
SPENDMETER_PRICE_ENTRY: Final = "spendmeter.price.entry"
# What list prices say a call cost, beside `gen_ai.usage.cost.amount` when that is the provider's billed amount.
SPENDMETER_COST_LIST_AMOUNT: Final = "spendmeter.cost.list_amount"
SPENDMETER_COST_TOOLS_AMOUNT: Final = "spendmeter.cost.tools_amount"  # server-side tool fees, inside the amount
SPENDMETER_TOOL_USES_PREFIX: Final = "spendmeter.tool_uses."  # + tool name (web_search, ...): billed uses
SPENDMETER_TAG_PREFIX: Final = "spendmeter.tag."  # + tag name: attribute(team=...) and the other tags
SPENDMETER_USAGE_STEPS: Final = "spendmeter.usage.steps"  # sampling steps the response reported (iterations)
SPENDMETER_USAGE_STEP_MODELS: Final = "spendmeter.usage.step_models"  # the models those steps ran at
