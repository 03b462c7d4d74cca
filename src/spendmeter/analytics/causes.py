"""Why a day x provider x model cell of `reconcile` differs: likely causes, computed from the ledger's rows."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from spendmeter.analytics.cells import UNATTRIBUTED, Cell, Tolerance
from spendmeter.analytics.views import money

RATIO_MATCH = Decimal("0.005")  # two cells whose provider/ledger ratios agree this closely share a price


def explain(cell: Cell, cells: list[Cell], ledger_days: set[tuple[date, str]], tolerance: Tolerance) -> list[str]:
    """Likely causes of the cell's difference, most specific first; never empty."""
    led, causes = cell.ledger, []
    if cell.model == UNATTRIBUTED:
        return [f"the provider bills {money(cell.billed)} USD not attributed to a model "
                f"({', '.join(sorted(set(cell.details)))}): tool fees, storage or other non-token costs the "
                "ledger does not price per call"]
    if not led.calls:
        if (cell.day, cell.provider) not in ledger_days:
            return [f"missing day: the ledger has no {cell.provider} calls on {cell.day} (spendmeter was not "
                    "running or had no ledger then, the rows were dropped, or another service or key spent this)"]
        return [f"the ledger has no calls of {cell.model} that day while it has others: calls made without "
                "spendmeter, or a model the provider names differently"]
    if not cell.billed:
        return [f"missing in the export: the provider reports no cost for {cell.model} on {cell.day} (the export "
                "ends before it or is still being computed, or these calls went to another organization or project)"]
    under = cell.diff < 0  # the provider billed more than the ledger has
    if under and led.unpriced:
        causes.append(f"unpriced calls: {led.unpriced} calls ({led.unpriced_tokens:,} tokens) have no price in "
                      "the ledger, so they add nothing to its spend (add the model to a prices override file)")
    if under and led.streams_without_usage:
        causes.append(f"streams without usage: {led.streams_without_usage} streamed calls ended without a usage "
                      "report, so their tokens and cost are unknown to the ledger (ask for include_usage)")
    if under and led.errors:
        causes.append(f"failed calls: {led.errors} calls failed; the ledger prices what they reported, while the "
                      "provider may bill the work done before the failure")
    if under and led.retries:
        causes.append(f"SDK retries: {led.retries} retried attempts on {led.retried_calls} calls; an attempt that "
                      "timed out after the provider did the work is billed, but only the final one is in the ledger")
    if not under and led.priced_not_ok:
        causes.append(f"blocked or failed calls: {led.priced_not_ok} calls that did not succeed carry "
                      f"{money(led.priced_not_ok_cost)} USD in the ledger and were probably not billed")
    if not under and led.estimated:
        causes.append(f"estimated usage: {led.estimated} calls were priced from estimated token counts")
    if len(led.sources) > 1:
        causes.append(f"price change: the ledger priced these calls with {len(led.sources)} price sources "
                      f"({', '.join(sorted(led.sources))})")
    ratio = _ratio(cell)
    if ratio is not None and not causes:
        peers = [c for c in cells if c is not cell and c.provider == cell.provider and c.model == cell.model
                 and (r := _ratio(c)) is not None and abs(r - ratio) <= RATIO_MATCH * ratio
                 and tolerance.exceeded(c.diff, c.billed)]
        days = sorted({cell.day, *(c.day for c in peers)})
        since = f" on {len(days)} days since {days[0]}" if peers else ""
        causes.append(f"price change: the provider billed x{ratio:.3f} of the ledger's price{since} with no "
                      "call-level cause: a price the catalog has not caught up with (or a discount, or another "
                      "tier); check the model's price and add an override")
    if not causes:
        causes.append("no cause found in the ledger: calls outside spendmeter (another service or key), or "
                      "ledger rows dropped (see spendmeter_internal_errors_total{kind=\"ledger.dropped\"})")
    return causes


def _ratio(cell: Cell) -> Decimal | None:
    if not cell.ledger.cost or not cell.billed:
        return None
    return (cell.billed / cell.ledger.cost).quantize(Decimal("0.0001"))
