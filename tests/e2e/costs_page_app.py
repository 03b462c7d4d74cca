"""An instrumented process for the cost page tests: spendmeter with a SQLite ledger and budgets, the real
openai and anthropic SDKs against the local fake provider, and the built-in server on the given port.

    python costs_page_app.py PORT LEDGER BUDGETS

It makes a fixed set of calls (PLAN), prints one JSON line with what spendmeter finished (per call:
user, feature, model, provider, cost), then serves until its standard input closes.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal

import anthropic
import openai

import spendmeter
from spendmeter.testing import HEADER_USAGE, CollectingSink, ProviderServer

# (provider, model, user, feature, agent, usage header, repeats)
PLAN = [
    ("openai", "gpt-4o", "alice", "support", "router", "input=12000,output=3000", 6),
    ("openai", "gpt-4o-mini", "bob", "search", "retriever", "input=40000,output=8000", 5),
    ("anthropic", "claude-3-5-sonnet-20240620", "carol", "coding", "coder", "input=30000,output=9000", 4),
    ("anthropic", "claude-3-haiku-20240307", "dave", "support", "summarizer", "input=5000,output=1000", 3),
    ("openai", "gpt-4o", "erin", "coding", "coder", "input=20000,output=6000", 2),
]


def main() -> int:
    port, ledger, budgets = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    sink = CollectingSink()
    spendmeter.add_sink(sink)
    with ProviderServer() as srv:
        # The local fake provider is an endpoint no host table knows: mapped as a user maps a local server.
        spendmeter.init(prometheus_port=port, ledger=ledger, budgets=budgets, usage_hosts=("127.0.0.1",),
                        providers={f"127.0.0.1:{srv.port}/v1": "openai", f"127.0.0.1:{srv.port}": "anthropic"})
        oai = openai.OpenAI(base_url=srv.openai_base_url, api_key="test", max_retries=0)
        ant = anthropic.Anthropic(base_url=srv.anthropic_base_url, api_key="test", max_retries=0)
        for provider, model, user, feature, agent, usage, repeats in PLAN:
            for _ in range(repeats):
                with spendmeter.attribute(user=user, feature=feature, agent=agent):
                    if provider == "openai":
                        oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                                    extra_headers={HEADER_USAGE: usage})
                    else:
                        ant.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": "hi"}],
                                            extra_headers={HEADER_USAGE: usage})
        calls = [{"user": c.attribution.user, "feature": c.attribution.feature, "model": c.model,
                  "provider": c.provider, "cost": str(c.cost_usd), "priced": c.priced} for c in sink.calls]
        assert all(c["priced"] for c in calls), calls
        total = sum((Decimal(c["cost"]) for c in calls), Decimal(0))
        print(json.dumps({"calls": calls, "total": str(total)}), flush=True)
        sys.stdin.read()  # serve until the test closes our standard input
    spendmeter.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
