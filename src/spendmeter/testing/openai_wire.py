"""OpenAI wire formats: chat completions, legacy completions, embeddings and errors.

Pure functions from a `Plan` to the JSON bodies and stream events the real API sends, shaped after the
`openai` SDK's `types/` models (chat `ChatCompletion`/`ChatCompletionChunk`, `Completion`,
`CreateEmbeddingResponse`). The Responses API has its own stream grammar and lives in
`openai_responses_wire`, which reuses the helpers here (`service_tier`, `request_plan`, `new_id`).
"""

from __future__ import annotations

import base64
import math
import struct
import time
import uuid
import zlib
from typing import Any

from spendmeter.testing.scenarios import (
    Event,
    FakeUsage,
    Plan,
    Reply,
    billed_cost_of,
    make_plan,
    openai_model,
    stream_usage_mode,
)

SYSTEM_FINGERPRINT = "fp_spendmeter0"

# status -> (type, code) as the real API labels them
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    404: ("invalid_request_error", "unknown_url"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "overloaded"),
}


def error_body(status: int, message: str, *, param: str | None = None) -> dict[str, Any]:
    kind, code = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def service_tier(plan: Plan) -> str:
    # The API never reports "auto": it says which tier actually served the request.
    return "default" if plan.tier in (None, "", "auto") else str(plan.tier)


def chat_usage(u: FakeUsage) -> dict[str, Any]:
    prompt = {"cached_tokens": u.cached, "audio_tokens": 0}
    if u.cache_write or u.cache_write_1h:
        prompt["cache_write_tokens"] = u.cache_write + u.cache_write_1h
    return {
        "prompt_tokens": u.prompt_total,
        "completion_tokens": u.output,
        "total_tokens": u.prompt_total + u.output,
        "prompt_tokens_details": prompt,
        "completion_tokens_details": {
            "reasoning_tokens": u.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish_reason(plan: Plan) -> str:
    if plan.tool is not None:
        return "tool_calls"
    return "length" if plan.hit_max_tokens else "stop"


# --- chat completions -------------------------------------------------------------------------------


def chat_json(plan: Plan, ident: str, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": plan.text, "refusal": None, "annotations": []}
    if plan.tool is not None:
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": f"call_{ident}",
                "type": "function",
                "function": {"name": plan.tool.name, "arguments": plan.tool.arguments},
            }
        ]
    return {
        "id": f"chatcmpl-{ident}",
        "object": "chat.completion",
        "created": created,
        "model": plan.model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(plan)}
        ],
        "usage": chat_usage(plan.usage),
        "service_tier": service_tier(plan),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def chat_stream(plan: Plan, ident: str, created: int, *, include_usage: bool) -> list[Event]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": f"chatcmpl-{ident}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": plan.model,
            "service_tier": service_tier(plan),
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        }
        if include_usage:
            body["usage"] = None  # the real API sends an explicit null on every chunk but the last
        body.update(extra)
        return body

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    events: list[Event] = []
    if plan.tool is None:
        events.append(Event(chunk(choice({"role": "assistant", "content": "", "refusal": None}))))
        events += [Event(chunk(choice({"content": piece})), content=True) for piece in plan.text_pieces()]
    else:
        head = {"index": 0, "id": f"call_{ident}", "type": "function"}
        first = {**head, "function": {"name": plan.tool.name, "arguments": ""}}
        events.append(Event(chunk(choice({"role": "assistant", "content": None, "tool_calls": [first]}))))
        events += [
            Event(
                chunk(choice({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})), content=True
            )
            for piece in plan.argument_pieces()
        ]
    events.append(Event(chunk(choice({}, _finish_reason(plan)))))
    if include_usage:
        events.append(Event(chunk([], usage=chat_usage(plan.usage))))
    events.append(Event("[DONE]"))
    return events


def stream_error_event() -> Event:
    """How chat and legacy completion streams report a failure after the 200: a bare `error` object."""
    return Event(
        {"error": error_body(500, "The server had an error while processing your request.")["error"]}
    )


# --- legacy text completions ------------------------------------------------------------------------


def _completion_usage(u: FakeUsage) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": u.prompt_total,
        "completion_tokens": u.output,
        "total_tokens": u.prompt_total + u.output,
    }
    if u.cached:
        usage["prompt_tokens_details"] = {"cached_tokens": u.cached, "audio_tokens": 0}
    if u.reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": u.reasoning}
    return usage


def completion_json(plan: Plan, ident: str, created: int) -> dict[str, Any]:
    finish = "length" if plan.hit_max_tokens else "stop"
    return {
        "id": f"cmpl-{ident}",
        "object": "text_completion",
        "created": created,
        "model": plan.model,
        "choices": [{"text": plan.text, "index": 0, "logprobs": None, "finish_reason": finish}],
        "usage": _completion_usage(plan.usage),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def completion_stream(plan: Plan, ident: str, created: int, *, include_usage: bool) -> list[Event]:
    def chunk(text: str, finish: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": f"cmpl-{ident}",
            "object": "text_completion",
            "created": created,
            "model": plan.model,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        if include_usage:
            body["usage"] = None
        return body

    events = [Event(chunk(piece, None), content=True) for piece in plan.text_pieces()]
    events.append(Event(chunk("", "length" if plan.hit_max_tokens else "stop")))
    if include_usage:
        last = chunk("", None)
        last.update(choices=[], usage=_completion_usage(plan.usage))
        events.append(Event(last))
    events.append(Event("[DONE]"))
    return events


# --- embeddings -------------------------------------------------------------------------------------


def embeddings_json(body: dict[str, Any], model: str, prompt_tokens: int) -> dict[str, Any]:
    inputs = body.get("input")
    if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
        inputs = [inputs]  # one string, or one token array
    dims = body.get("dimensions") if isinstance(body.get("dimensions"), int) else 8
    data = []
    for index, item in enumerate(inputs if isinstance(inputs, list) else []):
        seed = zlib.crc32(repr(item).encode())
        vector = [math.sin(seed + i) for i in range(dims)]
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        vector = [v / norm for v in vector]
        encoded: Any = vector
        if body.get("encoding_format") == "base64":  # what the SDK asks for unless told otherwise
            encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


# --- endpoints: (body, headers, path groups) -> Reply -----------------------------------------------


def request_plan(body: dict[str, Any], headers: dict[str, str], deployment: str | None = None) -> Plan:
    """The reply plan of one OpenAI request, with the model named as the real API names it back."""
    # Azure sends the deployment name as `model` too; the path is the fallback.
    return make_plan(body, headers, model=openai_model(str(body.get("model") or deployment or "unknown")))


def _include_usage(body: dict[str, Any]) -> bool:
    return bool((body.get("stream_options") or {}).get("include_usage"))


def chat_endpoint(body: dict[str, Any], headers: dict[str, str], deployment: str | None = None) -> Reply:
    plan, ident, created = request_plan(body, headers, deployment), new_id(), int(time.time())
    mode, cost = stream_usage_mode(headers), billed_cost_of(headers)
    if body.get("stream"):
        asked = _include_usage(body)
        events = chat_stream(plan, ident, created, include_usage=asked and mode == "asked")
        return Reply(events=_host_stream_usage(events, plan, mode, cost, asked), plan=plan)
    reply = chat_json(plan, ident, created)
    if cost is not None:
        reply["usage"]["cost"] = cost
    return Reply(reply, plan=plan)


def _host_stream_usage(events: list[Event], plan: Plan, mode: str, cost: float | None, asked: bool) -> list[Event]:
    """A chat stream the way hosts other than OpenAI report usage in it (`scenarios.STREAM_USAGE_MODES`)."""
    usage = chat_usage(plan.usage)
    if cost is not None:
        usage["cost"] = cost
    if mode == "asked":
        if asked and cost is not None:
            for event in events:
                if isinstance(event.data, dict) and event.data.get("usage"):
                    event.data["usage"] = usage
        return events
    data = [e for e in events if isinstance(e.data, dict)]
    last = data[-1].data  # the chunk with finish_reason
    assert isinstance(last, dict)
    if mode == "always":
        tail = {**last, "choices": [], "usage": usage}
        events.insert(len(events) - 1, Event(tail))  # before [DONE]
    elif mode == "last":
        last["usage"] = usage
    else:  # "choice"
        last["choices"][0]["usage"] = usage
    return events


def completions_endpoint(
    body: dict[str, Any], headers: dict[str, str], deployment: str | None = None
) -> Reply:
    plan, ident, created = request_plan(body, headers, deployment), new_id(), int(time.time())
    if body.get("stream"):
        events = completion_stream(plan, ident, created, include_usage=_include_usage(body))
        return Reply(events=events, plan=plan)
    return Reply(completion_json(plan, ident, created), plan=plan)


def embeddings_endpoint(
    body: dict[str, Any], headers: dict[str, str], deployment: str | None = None
) -> Reply:
    plan = request_plan(body, headers, deployment)
    return Reply(embeddings_json(body, plan.model, plan.usage.prompt_total), plan=plan)


def new_id() -> str:
    """A random id suffix (`chatcmpl-…`, `resp_…`), 24 hex digits like the real ones."""
    return uuid.uuid4().hex[:24]
