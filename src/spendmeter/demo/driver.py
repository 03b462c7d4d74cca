"""The demo's driver: sends the agents' `Request`s through the real `openai` and `anthropic` SDKs.

`run_conversation_sync` / `run_conversation_async` take one user message, ask `agents` which calls it
makes, and send each under `spendmeter.attribute(user=..., feature=..., agent=..., conversation=...)`, so
spendmeter sees the same traffic a real application would. A blocked call (`BudgetExceeded`) or a failed
one ends that message's turn, as it would for a real user.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import spendmeter
from spendmeter.budgets import BudgetExceeded
from spendmeter.demo.agents import Api, Message, Profile, Request, conversation_requests

log = logging.getLogger("spendmeter")

Outcome = Literal["ok", "error", "blocked"]


@dataclass
class Clients:
    """Sync and async clients of both SDKs, each also without retries (for the error-500 requests)."""

    openai: Any = None
    anthropic: Any = None
    openai_async: Any = None
    anthropic_async: Any = None
    no_retry: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, *, openai_base_url: str | None = None, anthropic_base_url: str | None = None,
              openai_key: str | None = None, anthropic_key: str | None = None, timeout: float = 30.0) -> Clients:
        clients = cls()
        if openai_key:
            import openai

            opts = {"base_url": openai_base_url, "api_key": openai_key, "max_retries": 2, "timeout": timeout}
            clients.openai, clients.openai_async = openai.OpenAI(**opts), openai.AsyncOpenAI(**opts)
        if anthropic_key:
            import anthropic

            opts = {"base_url": anthropic_base_url, "api_key": anthropic_key, "max_retries": 2, "timeout": timeout}
            clients.anthropic, clients.anthropic_async = anthropic.Anthropic(**opts), anthropic.AsyncAnthropic(**opts)
        for name in ("openai", "anthropic", "openai_async", "anthropic_async"):
            client = getattr(clients, name)
            if client is not None:
                clients.no_retry[name] = client.with_options(max_retries=0)
        return clients

    def pick(self, request: Request, *, is_async: bool) -> Any:
        name = request.provider + ("_async" if is_async else "")
        return getattr(self, name) if request.retries else self.no_retry[name]

    def close(self) -> None:
        for client in (self.openai, self.anthropic):
            if client is not None:
                client.close()

    async def aclose(self) -> None:
        for client in (self.openai_async, self.anthropic_async):
            if client is not None:
                await client.close()


def _method(client: Any, api: Api) -> Any:
    if api == "chat":
        return client.chat.completions.create
    if api == "responses":
        return client.responses.create
    if api == "embeddings":
        return client.embeddings.create
    if api == "messages":
        return client.messages.create
    return client.messages.stream


def call_sync(clients: Clients, request: Request) -> None:
    method = _method(clients.pick(request, is_async=False), request.api)
    if request.api == "messages_stream":
        with method(**request.kwargs) as stream:
            for _ in stream.text_stream:
                pass
        return
    result = method(**request.kwargs)
    if request.kwargs.get("stream"):
        for _ in result:
            pass


async def call_async(clients: Clients, request: Request) -> None:
    method = _method(clients.pick(request, is_async=True), request.api)
    if request.api == "messages_stream":
        async with method(**request.kwargs) as stream:
            async for _ in stream.text_stream:
                pass
        return
    result = await method(**request.kwargs)
    if request.kwargs.get("stream"):
        async for _ in result:
            pass


def _attribute(msg: Message, request: Request) -> Any:
    return spendmeter.attribute(user=msg.user, feature=msg.feature, agent=request.agent,
                                conversation=msg.conversation)


def _failed(exc: Exception, request: Request) -> Outcome:
    # Provider errors are part of the show (the SDK raised them, spendmeter recorded status="error");
    # anything else is a bug in the demo, worth a traceback in the log, but the demo goes on.
    if not _is_sdk_error(exc):
        log.warning("spendmeter demo: %s call of agent %s failed unexpectedly", request.api, request.agent,
                    exc_info=exc)
    return "error"


def _is_sdk_error(exc: Exception) -> bool:
    return any(cls.__module__.split(".")[0] in ("openai", "anthropic") and cls.__name__ == "APIError"
               for cls in type(exc).__mro__)


def run_conversation_sync(clients: Clients, msg: Message, profile: Profile) -> Outcome:
    """Router, specialist, summarizer, in order; a blocked or failed call ends the message's turn."""
    for request in conversation_requests(msg, profile):
        with _attribute(msg, request):
            try:
                call_sync(clients, request)
            except BudgetExceeded:
                return "blocked"  # the user is told to come back tomorrow; the rest is never sent
            except Exception as exc:
                return _failed(exc, request)
    return "ok"


async def run_conversation_async(clients: Clients, msg: Message, profile: Profile) -> Outcome:
    for request in conversation_requests(msg, profile):
        with _attribute(msg, request):
            try:
                await call_async(clients, request)
            except BudgetExceeded:
                return "blocked"
            except Exception as exc:
                return _failed(exc, request)
    return "ok"
