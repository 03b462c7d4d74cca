"""Anthropic message batch results: each line of `messages.batches.results()` is one call at batch rates.

A succeeded result is billed like the message it holds; errored, canceled and expired requests are not
billed (zero tokens, as the provider reports them) and are recorded as errors.
"""

from __future__ import annotations

from typing import Any

from spendmeter.call import Usage
from spendmeter.providers.anthropic.messages import MessagesAdapter, provider_of
from spendmeter.providers.base import RequestFacts, RequestOptions, ResponseFacts
from spendmeter.providers.endpoints import client_of
from spendmeter.providers.fields import get, given

_MESSAGES = MessagesAdapter()


class BatchResultsAdapter:
    operation = "messages"

    def item_request(self, resource: Any, item: Any, options: RequestOptions | None = None) -> RequestFacts:
        message = get(get(item, "result"), "message")
        model = given(get(message, "model"))
        return RequestFacts(
            provider=provider_of(client_of(resource), options.providers if options is not None else None),
            operation=self.operation,
            model=str(model) if model is not None else None,
            batch=True,
        )

    def item_response(self, item: Any) -> ResponseFacts:
        result = get(item, "result")
        kind = get(result, "type")
        if kind == "succeeded":
            facts = _MESSAGES.response(get(result, "message"))
        else:
            error = get(get(result, "error"), "error") or get(result, "error")
            facts = ResponseFacts(
                usage=Usage(source="reported"), error_type=str(get(error, "type") or kind or "unknown")
            )
        facts.response_id = given(get(item, "custom_id"))
        return facts
