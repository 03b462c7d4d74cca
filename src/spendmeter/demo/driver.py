"""The demo's driver: sends the agents' `Request`s through the real `openai`, `anthropic` and (when
installed) `google-genai` SDKs, and through `litellm`.

`run_conversation_sync` / `run_conversation_async` take one user message, ask `agents` which calls it
makes, and send each under `spendmeter.attribute(user=..., feature=..., agent=..., conversation=...)`, so
spendmeter sees the same traffic a real application would. A blocked call (`BudgetExceeded`) or a failed
one ends that message's turn, as it would for a real user.
"""

from __future__ import annotations

import logging
import os
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
    gemini: Any = None  # google-genai client (its `.aio` is the async one); the demo's calls never retry
    litellm: dict[str, dict[str, str]] = field(default_factory=dict)  # route prefix -> api_base / api_key

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

    def add_local_optional(self, server: Any, *, litellm: bool = False) -> bool:
        """google-genai (when installed) and, when asked, LiteLLM, pointed at the local fake provider.
        True when LiteLLM is ready."""
        try:
            from google import genai
            from google.genai import types

            self.gemini = genai.Client(api_key="gm-demo-not-a-real-key",
                                       http_options=types.HttpOptions(base_url=server.gemini_base_url))
        except ImportError:
            pass
        if not litellm:
            return False
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM's bundled prices: no network
        try:
            import litellm as lib  # now, not inside the event loop: importing it takes seconds
        except ImportError:
            return False
        lib.suppress_debug_info = True  # its red "Provider List" line on every provider error
        self.litellm = {
            "openai": {"api_base": server.openai_base_url, "api_key": "sk-demo-not-a-real-key"},
            "anthropic": {"api_base": server.anthropic_base_url, "api_key": "sk-ant-demo-not-a-real-key"},
        }
        return True

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


def _gemini(clients: Clients, request: Request, models: Any) -> tuple[Any, dict[str, Any]]:
    from google.genai import types

    kw = request.kwargs
    config = types.GenerateContentConfig(**kw["config"], http_options=types.HttpOptions(headers=kw["extra_headers"]))
    method = models.generate_content_stream if request.api == "gemini_stream" else models.generate_content
    return method, {"model": kw["model"], "contents": kw["contents"], "config": config}


def _litellm(clients: Clients, request: Request, name: str) -> tuple[Any, dict[str, Any]]:
    import litellm

    route = clients.litellm.get(request.kwargs["model"].split("/", 1)[0], {})
    return getattr(litellm, name), {**request.kwargs, **route, "num_retries": 0}


def call_sync(clients: Clients, request: Request) -> None:
    if request.api.startswith(("gemini", "litellm")):
        method, kwargs = (_gemini(clients, request, clients.gemini.models) if request.api.startswith("gemini")
                          else _litellm(clients, request, "completion"))
        result = method(**kwargs)
        if request.api == "gemini_stream" or kwargs.get("stream"):
            for _ in result:
                pass
        return
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
    if request.api.startswith(("gemini", "litellm")):
        method, kwargs = (_gemini(clients, request, clients.gemini.aio.models) if request.api.startswith("gemini")
                          else _litellm(clients, request, "acompletion"))
        result = await method(**kwargs)
        if request.api == "gemini_stream" or kwargs.get("stream"):
            async for _ in result:
                pass
        return
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


DEMO_TEAMS = ("payments", "search", "platform")  # the `team` tag of each user (dashboards: "Spend by tag")


def _team(user: str) -> str:
    return DEMO_TEAMS[sum(map(ord, user)) % len(DEMO_TEAMS)]


def _attribute(msg: Message, request: Request) -> Any:
    return spendmeter.attribute(user=msg.user, feature=msg.feature, agent=request.agent,
                                conversation=msg.conversation, team=_team(msg.user))


def _failed(exc: Exception, request: Request) -> Outcome:
    # Provider errors are part of the show (the SDK raised them, spendmeter recorded status="error");
    # anything else is a bug in the demo, worth a traceback in the log, but the demo goes on.
    if not _is_sdk_error(exc):
        log.warning("spendmeter demo: %s call of agent %s failed unexpectedly", request.api, request.agent,
                    exc_info=exc)
    return "error"


def _is_sdk_error(exc: Exception) -> bool:
    return any(cls.__module__.split(".")[0] in ("openai", "anthropic", "google") and cls.__name__ == "APIError"
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
