"""Canned provider responses for the in-memory benchmarks (`hook_cost.py`, `peers.py`): one chat completion,
one chat stream with a usage chunk, one Anthropic message and one Anthropic stream, served by a handler for
an httpx-style `MockTransport`. No network, no server: what is measured is the SDK and its instrumentation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

MSG = [{"role": "user", "content": "How do I reset my password?"}]
PROMPT_TEXT = MSG[0]["content"]  # looked for in spans and log records to tell whether content is captured

CHAT = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Click reset."}}],
    "usage": {"prompt_tokens": 1200, "completion_tokens": 100, "total_tokens": 1300,
              "prompt_tokens_details": {"cached_tokens": 1024}},
}).encode()
CHAT_SSE = b"".join(
    b"data: " + json.dumps(c).encode() + b"\n\n"
    for c in [
        *({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
           "choices": [{"index": 0, "delta": {"content": w}}]} for w in ("Click ", "the ", "reset ", "link ", ".") * 4),
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini", "choices": [],
         "usage": {"prompt_tokens": 1200, "completion_tokens": 20, "total_tokens": 1220}},
    ]
) + b"data: [DONE]\n\n"
MESSAGE = json.dumps({
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Click reset."}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 176, "output_tokens": 100, "cache_read_input_tokens": 1024,
              "cache_creation_input_tokens": 0},
}).encode()


def _event(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


MESSAGE_SSE = b"".join([
    _event("message_start", {"type": "message_start", "message": {
        **json.loads(MESSAGE), "content": [], "stop_reason": None,
        "usage": {"input_tokens": 176, "output_tokens": 1, "cache_read_input_tokens": 1024}}}),
    _event("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}}),
    *(_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": w}}) for w in ("Click ", "reset ") * 10),
    _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
    _event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                             "usage": {"output_tokens": 20}}),
    _event("message_stop", {"type": "message_stop"}),
])


def handler(httpx: ModuleType) -> Callable[[Any], Any]:
    """The MockTransport handler, built on the HTTP library the SDK uses (`httpx2` for the current majors)."""

    def handle(request: Any) -> Any:
        body = json.loads(request.content or b"{}")
        if request.url.path.endswith("/chat/completions"):
            if body.get("stream"):
                return httpx.Response(200, content=CHAT_SSE, headers={"content-type": "text/event-stream"})
            return httpx.Response(200, content=CHAT, headers={"content-type": "application/json"})
        if body.get("stream"):
            return httpx.Response(200, content=MESSAGE_SSE, headers={"content-type": "text/event-stream"})
        return httpx.Response(200, content=MESSAGE, headers={"content-type": "application/json"})

    return handle


def http_library(sdk: ModuleType) -> ModuleType:
    """`httpx2` or `httpx`: whichever the SDK's base client is built on (openai 3 / anthropic 2 use httpx2)."""
    import importlib

    base = importlib.import_module(f"{sdk.__name__}._base_client")
    for name in ("httpx2", "httpx"):
        if getattr(base, name, None) is not None:
            return getattr(base, name)
    raise RuntimeError(f"cannot tell which HTTP library {sdk.__name__} uses")
