"""A workload for the cost API tests and what the API must answer for it, derived from what the fake
provider served (its recorded requests), never from spendmeter's own records.

Each request carries its attribution in an `x-test-attr` header the fake provider records but ignores, its
token counts in `x-fake-usage`, so the expectation is: per recorded request, the served model, the tokens
it was told to report and the price of those tokens from the same price catalog."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from spendmeter.call import Cost, Usage
from spendmeter.testing import ProviderServer
from spendmeter.testing.scenarios import HEADER_SCENARIO, HEADER_USAGE, openai_model

ATTR_HEADER = "x-test-attr"
DIMS = ("user", "feature", "agent", "conversation")


@dataclass(frozen=True)
class Planned:
    provider: str  # "openai" | "anthropic"
    model: str
    user: str
    feature: str
    agent: str
    conversation: str
    input: int
    output: int
    stream: bool = False
    scenario: str = "ok"

    def headers(self) -> dict[str, str]:
        attr = ";".join(f"{d}={getattr(self, d)}" for d in DIMS)
        return {HEADER_USAGE: f"input={self.input},output={self.output}", ATTR_HEADER: attr,
                HEADER_SCENARIO: self.scenario}


def plan(n: int = 24) -> list[Planned]:
    users, features, agents = ("alice", "bob", "carol"), ("support", "search", "coding"), ("router", "coder")
    models = (("openai", "gpt-4o-mini"), ("openai", "gpt-4.1"), ("anthropic", "claude-sonnet-4-5"),
              ("openai", "no-such-model-xyz"))
    out = []
    for i in range(n):
        provider, model = models[i % 4] if i % 6 else models[0]
        out.append(Planned(provider, model, users[i % 3], features[(i // 2) % 3], agents[i % 2], f"conv-{i % 5}",
                           input=100 + 37 * i, output=20 + 11 * i, stream=provider == "openai" and i % 5 == 0,
                           scenario="error-400" if i == 7 else "ok"))
    return out


def do_call(p: Planned, oai: Any, ant: Any) -> None:
    """One planned call with the sync SDK clients (under `spendmeter.attribute` set by the caller)."""
    try:
        if p.provider == "openai":
            kwargs: dict[str, Any] = {"model": p.model, "messages": [{"role": "user", "content": "hi"}],
                                      "extra_headers": p.headers()}
            if p.stream:
                list(oai.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
            else:
                oai.chat.completions.create(**kwargs)
        else:
            ant.messages.create(model=p.model, max_tokens=512, messages=[{"role": "user", "content": "hi"}],
                                extra_headers=p.headers())
    except Exception as exc:
        if p.scenario == "ok":
            raise
        assert "400" in str(exc) or type(exc).__name__ == "BadRequestError", exc


@dataclass
class Served:
    provider: str
    model: str  # as the provider named it back
    attr: dict[str, str]
    usage: Usage
    billed: bool
    cost: Decimal
    unpriced: bool


def served(server: ProviderServer, pricebook: Any) -> list[Served]:
    out = []
    for r in server.requests:
        if ATTR_HEADER not in r.headers or r.body is None:
            continue
        provider = "anthropic" if r.path.startswith("/v1/messages") else "openai"
        model = openai_model(r.body["model"]) if provider == "openai" else r.body["model"]
        attr = dict(kv.split("=", 1) for kv in r.headers[ATTR_HEADER].split(";"))
        billed = r.headers.get(HEADER_SCENARIO, "ok") == "ok"
        counts = dict(kv.split("=") for kv in r.headers[HEADER_USAGE].split(","))
        usage = Usage(input=int(counts["input"]), output=int(counts["output"]), source="reported")
        usage = usage if billed else Usage()
        price = pricebook.price(provider, model, usage, when=datetime.now(UTC)) if billed else None
        out.append(Served(provider, model, attr, usage, billed, price.total if isinstance(price, Cost) else Decimal(0),
                          billed and not isinstance(price, Cost)))
    return out


def expect(calls: list[Served], by: tuple[str, ...], keep: Any = None) -> dict[tuple[str, ...], dict[str, Any]]:
    """What a group route must say per key: exact cost, tokens, calls, unpriced calls, conversations."""
    groups: dict[tuple[str, ...], dict[str, Any]] = defaultdict(
        lambda: {"cost": Decimal(0), "tokens": 0, "calls": 0, "unpriced": 0, "conversations": set()})
    for c in calls:
        if keep is not None and not keep(c):
            continue
        values = {**c.attr, "model": c.model, "provider": c.provider, "day": datetime.now(UTC).date().isoformat()}
        g = groups[tuple(values[d] for d in by)]
        g["cost"] += c.cost
        g["tokens"] += c.usage.total
        g["calls"] += 1
        g["unpriced"] += int(c.unpriced)
        g["conversations"].add(c.attr["conversation"])
    return {k: {**v, "conversations": len(v["conversations"])} for k, v in groups.items()}


def observed(rows: list[dict[str, Any]], by: tuple[str, ...]) -> dict[tuple[str, ...], dict[str, Any]]:
    """A group route's rows in the shape of `expect()`."""
    return {tuple(r[d] for d in by): {"cost": Decimal(r["cost_usd"]), "tokens": r["tokens"], "calls": r["calls"],
                                      "unpriced": r["unpriced_calls"], "conversations": r["conversations"]}
            for r in rows}
