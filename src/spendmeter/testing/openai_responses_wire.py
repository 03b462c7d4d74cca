"""OpenAI Responses API wire format: the `Response` object, its named stream events, and its endpoint.

Kept apart from `openai_wire` because the Responses API has its own grammar: typed, numbered events
(`response.created` … `response.completed`) instead of chat's anonymous chunks, an output list of items, and
a typed `error` event for a failure after the 200. Shaped after the `openai` SDK's `types/responses/`.
"""

from __future__ import annotations

import time
from typing import Any

from spendmeter.testing.openai_wire import new_id, request_plan, service_tier
from spendmeter.testing.scenarios import Event, FakeUsage, Plan, Reply


def responses_usage(u: FakeUsage) -> dict[str, Any]:
    return {
        "input_tokens": u.prompt_total,
        "input_tokens_details": {
            "cached_tokens": u.cached,
            "cache_write_tokens": u.cache_write + u.cache_write_1h,
        },
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.prompt_total + u.output,
    }


def _output_items(plan: Plan, ident: str, *, done: bool) -> list[dict[str, Any]]:
    """The output list; `done=False` gives each item as `response.output_item.added` first shows it."""
    status = "completed" if done else "in_progress"
    items: list[dict[str, Any]] = []
    if plan.usage.reasoning:
        items.append({"id": f"rs_{ident}", "type": "reasoning", "summary": []})
    if plan.tool is not None:
        items.append(
            {
                "id": f"fc_{ident}",
                "type": "function_call",
                "status": status,
                "call_id": f"call_{ident}",
                "name": plan.tool.name,
                "arguments": plan.tool.arguments if done else "",
            }
        )
    else:
        items.append(
            {
                "id": f"msg_{ident}",
                "type": "message",
                "status": status,
                "role": "assistant",
                "content": [_text_part(plan.text)] if done else [],
            }
        )
    return items


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def responses_json(
    plan: Plan, ident: str, created: int, body: dict[str, Any], *, done: bool = True
) -> dict[str, Any]:
    return {
        "id": f"resp_{ident}",
        "object": "response",
        "created_at": created,
        "completed_at": created if done else None,
        "status": "completed" if done else "in_progress",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": plan.model,
        "output": _output_items(plan, ident, done=True) if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": service_tier(plan),
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": responses_usage(plan.usage) if done else None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def responses_stream(plan: Plan, ident: str, created: int, body: dict[str, Any]) -> list[Event]:
    events: list[Event] = []

    def emit(kind: str, content: bool = False, **fields: Any) -> None:
        events.append(
            Event({"type": kind, "sequence_number": len(events), **fields}, name=kind, content=content)
        )

    emit("response.created", response=responses_json(plan, ident, created, body, done=False))
    emit("response.in_progress", response=responses_json(plan, ident, created, body, done=False))
    added, finished = _output_items(plan, ident, done=False), _output_items(plan, ident, done=True)
    for index, (item, final) in enumerate(zip(added, finished, strict=True)):
        emit("response.output_item.added", output_index=index, item=item)
        item_id = item["id"]
        if item["type"] == "message":
            where = {"item_id": item_id, "output_index": index, "content_index": 0}
            emit("response.content_part.added", **where, part=_text_part(""))
            for piece in plan.text_pieces():
                emit("response.output_text.delta", True, **where, delta=piece, logprobs=[])
            emit("response.output_text.done", **where, text=plan.text, logprobs=[])
            emit("response.content_part.done", **where, part=_text_part(plan.text))
        elif item["type"] == "function_call":
            for piece in plan.argument_pieces():
                emit(
                    "response.function_call_arguments.delta",
                    True,
                    item_id=item_id,
                    output_index=index,
                    delta=piece,
                )
            emit(
                "response.function_call_arguments.done",
                item_id=item_id,
                output_index=index,
                arguments=final["arguments"],
            )
        emit("response.output_item.done", output_index=index, item=final)
    emit("response.completed", response=responses_json(plan, ident, created, body))
    return events


def responses_error_event(sequence_number: int) -> Event:
    """The Responses API reports a failure after the 200 as a typed `error` event."""
    data = {
        "type": "error",
        "code": "server_error",
        "message": "The server had an error while processing your request.",
        "param": None,
        "sequence_number": sequence_number,
    }
    return Event(data, name="error")


def responses_endpoint(body: dict[str, Any], headers: dict[str, str]) -> Reply:
    """`POST /v1/responses` (and the Azure paths): JSON, or the event stream when `stream` is true."""
    plan, ident, created = request_plan(body, headers), new_id(), int(time.time())
    if body.get("stream"):
        return Reply(events=responses_stream(plan, ident, created, body), plan=plan)
    return Reply(responses_json(plan, ident, created, body), plan=plan)
