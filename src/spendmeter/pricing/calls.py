"""A whole call's cost: its token classes (per step, each at the model that ran it), its server-side tool
fees, and, where the provider reported what it billed, that amount with the list-price figure beside it.

Kept apart from the engine, which prices one `(provider, model, Usage)`; this composes such prices:
- steps (Anthropic `usage.iterations`): each step is priced at its own model; one unpriced step makes the
  whole call `Unpriced` (a partial sum would understate the call);
- tools: `uses × rate per use`, the rate from the overrides' `[tools.<provider>.<tool>]` (the provider's
  own id first, then its price family); a tool with no rate is named in the price entry and adds nothing
  (code execution, for one, is billed per container-hour, which no single call determines);
- billed cost (OpenRouter `usage.cost`): `total` is what the provider billed; the classes and `list_total`
  are what the list prices say, when they say anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from spendmeter.call import Call, Cost, Step, Unpriced
from spendmeter.pricing import lookup

if TYPE_CHECKING:
    from spendmeter.pricing.engine import PriceBook

_ZERO = Decimal(0)
_PER_USE = Decimal("0.001")  # rates are per 1,000 uses


def price_call(book: PriceBook, call: Call) -> Cost | Unpriced:
    tier, when = call.service_tier, call.started_at
    if call.steps:
        tokens = _price_steps(book, call.provider, call.model, call.steps, tier, call.batch, when)
    else:
        tokens = book.price(call.provider, call.model, call.usage, tier=tier, batch=call.batch, when=when)
    if isinstance(tokens, Cost):
        tokens = with_tools(book, call.provider, call.model, tokens, call.tool_uses, when)
    if call.billed_cost is None:
        return tokens
    return _billed(call, tokens)


def with_tools(book: PriceBook, provider: str, model: str, cost: Cost, uses: Iterable[tuple[str, int]],
               when: datetime) -> Cost:
    """`cost` plus the call's tool fees, and the per-request fee some models carry (Perplexity's Sonar:
    the price data's `requests_kcount`), which is kept with the tool fees as `request`."""
    tool_costs: list[tuple[str, Decimal]] = []
    missing: list[str] = []
    sources: set[str] = set()
    for tool, count in uses:
        found = lookup.tool_rate(book, provider, tool, when.date(), model, when)
        if found is None:
            missing.append(tool)
            continue
        rate, origin = found
        tool_costs.append((tool, rate.per_1000 * _PER_USE * count))
        sources.add(origin)
    request_fee = lookup.model_unit_rate(book, provider, model, "requests_kcount", when)
    if request_fee:
        tool_costs.append(("request", request_fee * _PER_USE))
    if not tool_costs and not missing:
        return cost
    tools = sum((c for _, c in tool_costs), _ZERO)
    entry = cost.price_entry
    if tool_costs:
        entry += " + " + ", ".join(t for t, _ in tool_costs)
    if missing:
        entry += f" [no per-use price: {', '.join(missing)}]"
    source = cost.source
    for origin in sorted(sources - {"genai"}):
        tag = book.source_tag(origin)
        if tag and tag not in source:
            source += tag
    return Cost(cost.input, cost.cache_read, cost.cache_write, cost.output, cost.total + tools, source, entry,
                cost.currency, cost.tools + tools, (*cost.tool_costs, *tool_costs), cost.list_total,
                _tools_on_first_part(cost.parts, tools))


def _tools_on_first_part(parts: tuple[tuple[str, Cost], ...], tools: Decimal) -> tuple[tuple[str, Cost], ...]:
    """Tool fees belong to the call's own model, which is the first part."""
    if not parts or not tools:
        return parts
    (model, c), rest = parts[0], parts[1:]
    first = Cost(c.input, c.cache_read, c.cache_write, c.output, c.total + tools, c.source, c.price_entry,
                 c.currency, c.tools + tools)
    return ((model, first), *rest)


def _price_steps(book: PriceBook, provider: str, model: str, steps: tuple[Step, ...], tier: str | None,
                 batch: bool, when: datetime) -> Cost | Unpriced:
    """Each step is its own sampling request, so each is priced alone (a long-context threshold applies to
    one request's prompt, never to a sum of steps); the costs are then added up per model."""
    by_model: dict[str, list[Cost]] = {model: []}  # the call's own model first: tool fees go there
    for i, step in enumerate(steps):
        priced = book.price(provider, step.model, step.usage, tier=tier, batch=batch, when=when)
        if isinstance(priced, Unpriced):
            return Unpriced(f"step {i + 1} ({step.kind}) at {step.model!r} has no price: {priced.reason}")
        by_model.setdefault(step.model, []).append(priced)
    parts = [(m, _add(costs)) for m, costs in by_model.items() if costs]
    whole = _add([c for _, c in parts])
    return Cost(whole.input, whole.cache_read, whole.cache_write, whole.output, whole.total, whole.source,
                whole.price_entry, parts=tuple(parts) if len(parts) > 1 else ())


def _add(costs: list[Cost]) -> Cost:
    return Cost(
        input=sum((c.input for c in costs), _ZERO),
        cache_read=sum((c.cache_read for c in costs), _ZERO),
        cache_write=sum((c.cache_write for c in costs), _ZERO),
        output=sum((c.output for c in costs), _ZERO),
        total=sum((c.total for c in costs), _ZERO),
        source="+".join(dict.fromkeys(c.source for c in costs)),
        price_entry=" + ".join(dict.fromkeys(c.price_entry for c in costs)),
    )


def _billed(call: Call, listed: Cost | Unpriced) -> Cost:
    billed = call.billed_cost
    assert billed is not None
    source = f"{call.provider} {call.billed_cost_source or 'reported cost'}"
    if isinstance(listed, Cost):
        return Cost(listed.input, listed.cache_read, listed.cache_write, listed.output, billed, source,
                    f"billed by {call.provider}; list price {listed.price_entry}", listed.currency, listed.tools,
                    listed.tool_costs, listed.total)
    return Cost(_ZERO, _ZERO, _ZERO, _ZERO, billed, source, f"billed by {call.provider} (no list price: "
                f"{listed.reason})")
