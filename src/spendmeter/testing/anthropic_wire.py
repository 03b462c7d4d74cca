"""Anthropic wire formats: Messages (JSON and SSE), Message Batches and errors.

Pure functions from a `Plan` to what the real API sends, shaped after the `anthropic` SDK's `types/`
(`Message`, `Usage`, the `Raw*Event` stream events, `MessageBatch`, `MessageBatchIndividualResponse`).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from spendmeter.testing.scenarios import (
    HEADER_BATCH_ERRORS,
    Event,
    FakeUsage,
    Iteration,
    Plan,
    Reply,
    ScenarioError,
    iterations_of,
    make_plan,
    server_tools_of,
)

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str, *, request_id: str | None = None) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    if request_id:
        body["request_id"] = request_id
    return body


def service_tier(plan: Plan, *, batch: bool = False) -> str:
    if batch:
        return "batch"
    # Requests say "auto" or "standard_only"; usage reports the tier that served them.
    return "standard" if plan.tier in (None, "", "auto", "standard_only") else str(plan.tier)


def usage(u: FakeUsage, tier: str, *, output: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "input_tokens": u.input,
        "cache_creation_input_tokens": u.cache_write + u.cache_write_1h,
        "cache_read_input_tokens": u.cached,
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_write,
            "ephemeral_1h_input_tokens": u.cache_write_1h,
        },
        "output_tokens": u.output if output is None else output,
        "service_tier": tier,
    }
    if u.reasoning:
        body["output_tokens_details"] = {"thinking_tokens": u.reasoning}
    return body


def _stop_reason(plan: Plan) -> str:
    if plan.tool is not None:
        return "tool_use"
    return "max_tokens" if plan.hit_max_tokens else "end_turn"


def _content(plan: Plan, ident: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": plan.text}]
    if plan.tool is not None:
        blocks.append(
            {
                "type": "tool_use",
                "id": f"toolu_{ident}",
                "name": plan.tool.name,
                "input": json.loads(plan.tool.arguments),
            }
        )
    return blocks


def message_json(plan: Plan, ident: str, *, batch: bool = False) -> dict[str, Any]:
    return {
        "id": f"msg_{ident}",
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": _content(plan, ident),
        "stop_reason": _stop_reason(plan),
        "stop_sequence": None,
        "usage": usage(plan.usage, service_tier(plan, batch=batch)),
    }


def message_stream(plan: Plan, ident: str) -> list[Event]:
    tier = service_tier(plan)
    events: list[Event] = []

    def emit(kind: str, content: bool = False, **fields: Any) -> None:
        events.append(Event({"type": kind, **fields}, name=kind, content=content))

    # message_start carries the input side and a token or so of output; message_delta the cumulative end.
    start = {**message_json(plan, ident), "content": [], "stop_reason": None}
    start["usage"] = usage(plan.usage, tier, output=min(1, plan.usage.output))
    emit("message_start", message=start)
    emit("content_block_start", index=0, content_block={"type": "text", "text": ""})
    events.append(Event({"type": "ping"}, name="ping"))
    for piece in plan.text_pieces():
        emit("content_block_delta", True, index=0, delta={"type": "text_delta", "text": piece})
    emit("content_block_stop", index=0)
    if plan.tool is not None:
        block = {"type": "tool_use", "id": f"toolu_{ident}", "name": plan.tool.name, "input": {}}
        emit("content_block_start", index=1, content_block=block)
        for piece in plan.argument_pieces():
            emit(
                "content_block_delta",
                True,
                index=1,
                delta={"type": "input_json_delta", "partial_json": piece},
            )
        emit("content_block_stop", index=1)
    final = usage(plan.usage, tier)
    del final["cache_creation"], final["service_tier"]  # not part of MessageDeltaUsage
    emit("message_delta", delta={"stop_reason": _stop_reason(plan), "stop_sequence": None}, usage=final)
    emit("message_stop")
    return events


def stream_error_event(request_id: str) -> Event:
    return Event(error_body(529, "Overloaded", request_id=request_id), name="error")


# --- Message Batches --------------------------------------------------------------------------------


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def batch_json(
    batch_id: str,
    created: datetime,
    counts: dict[str, int],
    *,
    ended: bool,
    results_url: str,
) -> dict[str, Any]:
    total = sum(counts.values())
    return {
        "id": batch_id,
        "type": "message_batch",
        "processing_status": "ended" if ended else "in_progress",
        "request_counts": {
            "processing": 0 if ended else total,
            "succeeded": counts.get("succeeded", 0) if ended else 0,
            "errored": counts.get("errored", 0) if ended else 0,
            "canceled": 0,
            "expired": 0,
        },
        "created_at": _iso(created),
        "ended_at": _iso(created) if ended else None,
        "expires_at": _iso(created + timedelta(hours=24)),
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": results_url if ended else None,
    }


def batch_result_line(custom_id: str, plan: Plan | None, ident: str) -> dict[str, Any]:
    """One JSONL line: `plan=None` makes the `errored` result."""
    if plan is None:
        error = error_body(
            400, "Fake error for this batch request (x-fake-batch-errors).", request_id=f"req_{ident}"
        )
        return {"custom_id": custom_id, "result": {"type": "errored", "error": error}}
    return {
        "custom_id": custom_id,
        "result": {"type": "succeeded", "message": message_json(plan, ident, batch=True)},
    }


def now() -> datetime:
    return datetime.now(UTC)


# --- endpoints: (body, headers, path groups) -> Reply -----------------------------------------------


def messages_endpoint(
    body: dict[str, Any], headers: dict[str, str], model: str | None = None, stream: bool | None = None
) -> Reply:
    plan = make_plan(body, headers, model=str(model or body.get("model") or "unknown"))
    steps, tools = iterations_of(headers), server_tools_of(headers)
    if body.get("stream") if stream is None else stream:
        events = message_stream(plan, _new_id())
        if steps or tools:
            delta = next(e.data for e in events if isinstance(e.data, dict) and e.data["type"] == "message_delta")
            _multi_step(delta["usage"], steps, tools, plan, stream=True)  # cumulative: the final counts
        return Reply(events=events, plan=plan)
    reply = message_json(plan, _new_id())
    if steps or tools:
        _multi_step(reply["usage"], steps, tools, plan, stream=False)
    return Reply(reply, plan=plan)


def _multi_step(
    body: dict[str, Any], steps: list[Iteration], tools: dict[str, int], plan: Plan, *, stream: bool
) -> None:
    """`usage.iterations` and `usage.server_tool_use`, as the API reports them: every step with its own
    counts, the top-level fields covering the last sampling step only (never a compaction)."""
    if tools:
        body["server_tool_use"] = {f"{name}_requests": n for name, n in tools.items()}
    if not steps:
        return
    entries = []
    for step in steps:
        entry = usage(step.usage, "standard")
        del entry["service_tier"]
        entry["type"] = step.kind
        if step.model is not None or step.kind in ("advisor_message", "fallback_message"):
            entry["model"] = step.model or plan.model
        entries.append(entry)
    body["iterations"] = entries
    last = next((s for s in reversed(steps) if s.kind != "compaction"), steps[-1])
    top = usage(last.usage, "standard")
    for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"):
        body[key] = top[key]
    if not stream:
        body["cache_creation"] = top["cache_creation"]


def vertex_endpoint(body: dict[str, Any], headers: dict[str, str], model: str, specifier: str) -> Reply:
    # Vertex carries the model in the path and keeps `stream` in the body.
    stream = specifier == "streamRawPredict" or bool(body.get("stream"))
    return messages_endpoint(body, headers, model=unquote(model), stream=stream)


def bedrock_endpoint(body: dict[str, Any], headers: dict[str, str], model: str) -> Reply:
    # Only `invoke`: `invoke-with-response-stream` uses AWS event-stream framing (botocore decodes it).
    return messages_endpoint(body, headers, model=unquote(model), stream=False)


def count_tokens_endpoint(body: dict[str, Any], headers: dict[str, str]) -> Reply:
    plan = make_plan(body, headers, model=str(body.get("model") or "unknown"))
    return Reply({"input_tokens": plan.usage.prompt_total})


@dataclass(slots=True)
class _Batch:
    created: datetime
    lines: list[dict[str, Any]]
    counts: dict[str, int]


class BatchStore:
    """Message Batches that end at once: the first retrieve already reports `ended` and a `results_url`."""

    def __init__(self, base_url: Callable[[], str]) -> None:
        self._base_url = base_url
        self._lock = threading.Lock()
        self._batches: dict[str, _Batch] = {}

    def clear(self) -> None:
        with self._lock:
            self._batches.clear()

    def create(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise ScenarioError("requests: a non-empty list of {custom_id, params} is required")
        errored = {s.strip() for s in headers.get(HEADER_BATCH_ERRORS, "").split(",") if s.strip()}
        lines, counts = [], {"succeeded": 0, "errored": 0}
        for item in requests:
            custom_id, params = str(item.get("custom_id")), item.get("params") or {}
            plan = (
                None if custom_id in errored else make_plan(params, headers, model=str(params.get("model")))
            )
            lines.append(batch_result_line(custom_id, plan, _new_id()))
            counts["errored" if plan is None else "succeeded"] += 1
        batch_id, batch = f"msgbatch_{_new_id()}", _Batch(now(), lines, counts)
        with self._lock:
            self._batches[batch_id] = batch
        return Reply(self._describe(batch_id, batch, ended=False))

    def retrieve(self, body: dict[str, Any], headers: dict[str, str], batch: str) -> Reply:
        found = self._find(batch)
        return Reply(self._describe(batch, found, ended=True)) if found else _no_batch(batch)

    def results(self, body: dict[str, Any], headers: dict[str, str], batch: str) -> Reply:
        found = self._find(batch)
        return Reply(found.lines, jsonl=True) if found else _no_batch(batch)

    def _find(self, batch_id: str) -> _Batch | None:
        with self._lock:
            return self._batches.get(batch_id)

    def _describe(self, batch_id: str, batch: _Batch, *, ended: bool) -> dict[str, Any]:
        url = f"{self._base_url()}/v1/messages/batches/{batch_id}/results"
        return batch_json(batch_id, batch.created, batch.counts, ended=ended, results_url=url)


def _no_batch(batch_id: str) -> Reply:
    return Reply(error_body(404, f"No message batch with id {batch_id}."), status=404)


def _new_id() -> str:
    return uuid.uuid4().hex[:24]
