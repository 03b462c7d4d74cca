"""Gemini wire formats (Gemini Developer API and Vertex AI): generateContent (JSON),
streamGenerateContent?alt=sse, embedContent / batchEmbedContents (and Vertex `predict` for the older text
embedding models), and errors.

Pure functions from a `Plan` to the camelCase JSON the real API sends, shaped after `google-genai`'s
`types.GenerateContentResponse`, `GenerateContentResponseUsageMetadata` and `EmbedContentResponse`.
The scenario header's counts map onto Gemini's own (see `usage_metadata`); one header of this module adds the
one count the shared header has no key for: `x-fake-tool-use-prompt: <int>` (`toolUsePromptTokenCount`).
"""

from __future__ import annotations

import json
import math
import uuid
import zlib
from typing import Any

from spendmeter.testing.scenarios import (
    HEADER_USAGE,
    Event,
    FakeUsage,
    Plan,
    Reply,
    ScenarioError,
    make_plan,
    parse_usage_header,
    tokens_for_chars,
)

HEADER_TOOL_USE_PROMPT = "x-fake-tool-use-prompt"

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL", 503: "UNAVAILABLE"}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message,
                      "status": _STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")}}


def tool_use_prompt(headers: dict[str, str]) -> int:
    raw = headers.get(HEADER_TOOL_USE_PROMPT, "0").strip() or "0"
    try:
        value = int(raw)
    except ValueError:
        raise ScenarioError(f"{HEADER_TOOL_USE_PROMPT} must be an integer, got {raw!r}") from None
    if value < 0:
        raise ScenarioError(f"{HEADER_TOOL_USE_PROMPT} must not be negative")
    return value


def usage_metadata(u: FakeUsage, tool_prompt: int = 0, *, candidates: int | None = None) -> dict[str, Any]:
    """The header's disjoint counts in Gemini's terms: the prompt includes its cached part, thoughts are apart
    from the candidates (the header's `output` includes `reasoning`, as everywhere)."""
    prompt = u.input + u.cached
    thoughts = min(u.reasoning, u.output)
    answer = u.output - thoughts if candidates is None else candidates
    meta: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": answer,
        "totalTokenCount": prompt + answer + thoughts + tool_prompt,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if u.cached:
        meta["cachedContentTokenCount"] = u.cached
        meta["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": u.cached}]
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    if tool_prompt:
        meta["toolUsePromptTokenCount"] = tool_prompt
    return meta


def _plan(body: dict[str, Any], headers: dict[str, str], model: str) -> Plan:
    """The shared plan, from Gemini's request shape (contents, systemInstruction, generationConfig, tools)."""
    config = body.get("generationConfig") or {}
    declarations = [d for tool in body.get("tools") or [] if isinstance(tool, dict)
                    for d in tool.get("functionDeclarations") or []]
    mode = (((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode") or "").upper()
    shaped: dict[str, Any] = {"messages": body.get("contents"), "system": body.get("systemInstruction")}
    if isinstance(config.get("maxOutputTokens"), int):
        shaped["max_tokens"] = config["maxOutputTokens"]
    if declarations and mode != "NONE":
        shaped["tools"] = [{"name": d.get("name"), "parameters": d.get("parameters") or d.get("parametersJsonSchema")}
                           for d in declarations]
    return make_plan(shaped, headers, model=model)


def _finish(plan: Plan) -> str:
    return "MAX_TOKENS" if plan.hit_max_tokens and plan.tool is None else "STOP"


def _parts(plan: Plan, text: str | None = None) -> list[dict[str, Any]]:
    if plan.tool is not None:
        return [{"functionCall": {"name": plan.tool.name, "args": json.loads(plan.tool.arguments)}}]
    return [{"text": plan.text if text is None else text}]


def _response(plan: Plan, ident: str, parts: list[dict[str, Any]], meta: dict[str, Any] | None,
              finish: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    body: dict[str, Any] = {"candidates": [candidate], "modelVersion": plan.model, "responseId": ident}
    if meta is not None:
        body["usageMetadata"] = meta
    return body


def generate_json(plan: Plan, ident: str, tool_prompt: int) -> dict[str, Any]:
    return _response(plan, ident, _parts(plan), usage_metadata(plan.usage, tool_prompt), _finish(plan))


def generate_stream(plan: Plan, ident: str, tool_prompt: int) -> list[Event]:
    """Each chunk carries the running usage (the prompt in full, the candidates so far); the last one is final."""
    thoughts = min(plan.usage.reasoning, plan.usage.output)
    answer = plan.usage.output - thoughts
    if plan.tool is not None:
        return [Event(_response(plan, ident, _parts(plan), usage_metadata(plan.usage, tool_prompt), "STOP"),
                      content=True)]
    pieces = plan.text_pieces()
    events = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        so_far = answer if last else min(answer, index + 1)
        meta = usage_metadata(plan.usage, tool_prompt, candidates=so_far)
        events.append(Event(_response(plan, ident, [{"text": piece}], meta, _finish(plan) if last else None),
                            content=True))
    return events


def _embed_values(item: Any, dims: int = 8) -> list[float]:
    seed = zlib.crc32(repr(item).encode())
    vector = [math.sin(seed + i) for i in range(dims)]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _content_tokens(content: Any) -> int:
    return tokens_for_chars(sum(len(str(p.get("text", ""))) for p in (content or {}).get("parts") or []
                                if isinstance(p, dict)))


def _embed_total(headers: dict[str, str], derived: int) -> int:
    """The header's `input`, when given, is the whole count; else ceil(characters / 4)."""
    return parse_usage_header(headers.get(HEADER_USAGE)).get("input", derived)


# --- endpoints: (body, headers, path groups) -> Reply -----------------------------------------------
def model_endpoint(body: dict[str, Any], headers: dict[str, str], model: str, method: str) -> Reply:
    if method in ("generateContent", "streamGenerateContent"):
        plan, ident = _plan(body, headers, model), uuid.uuid4().hex[:22]
        tool_prompt = tool_use_prompt(headers)
        if method == "streamGenerateContent":
            return Reply(events=generate_stream(plan, ident, tool_prompt), plan=plan)
        return Reply(generate_json(plan, ident, tool_prompt), plan=plan)
    if method == "embedContent":
        content = body.get("content") or body
        total = _embed_total(headers, _content_tokens(content))
        return Reply({"embedding": {"values": _embed_values(content)},
                      "usageMetadata": {"promptTokenCount": total, "totalTokenCount": total}})
    if method == "batchEmbedContents":
        requests = body.get("requests") or []
        total = _embed_total(headers, sum(_content_tokens(r.get("content")) for r in requests))
        return Reply({"embeddings": [{"values": _embed_values(r.get("content"))} for r in requests],
                      "usageMetadata": {"promptTokenCount": total, "totalTokenCount": total}})
    if method == "predict":  # Vertex text-embedding models: token counts per instance
        instances = body.get("instances") or []
        counts = [tokens_for_chars(len(str(i.get("content", "")))) for i in instances]
        return Reply({"predictions": [{"embeddings": {"values": _embed_values(i), "statistics":
                                                      {"token_count": c, "truncated": False}}}
                                      for i, c in zip(instances, counts, strict=True)],
                      "metadata": {"billableCharacterCount": sum(len(str(i.get("content", ""))) for i in instances)}})
    raise ScenarioError(f"unknown Gemini method {method!r}")
