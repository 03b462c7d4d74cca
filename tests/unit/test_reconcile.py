"""`spendmeter reconcile` against exports written from the providers' documented formats (OpenAI Costs API
pages, Anthropic cost_report pages in cents, a generic CSV), over a real SQLite ledger written by the
LedgerSink. The exports equal the ledger's own per-cell sums except where a discrepancy is planted; each
planted one must be found, and explained by its cause; every other cell must match exactly."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from random import Random

import pytest

from spendmeter.analytics import LedgerSource
from spendmeter.analytics.exports import ExportError, load_anthropic, load_openai
from spendmeter.analytics.queries import Window
from spendmeter.analytics.reconcile import base_model, parse_tolerance, reconcile
from spendmeter.call import Attribution, Call, Cost, Unpriced, Usage
from spendmeter.cli import main as cli_main
from spendmeter.sinks.ledger import LedgerSink

D1 = date(2025, 6, 1)
DAYS = [D1 + timedelta(days=i) for i in range(4)]
MINI, GPT41, SONNET, UNKNOWN = "gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14", "claude-sonnet-4-5-20250929", "gpt-9"
P = {"mini": ("openai", MINI), "41": ("openai", GPT41), "sonnet": ("anthropic", SONNET), "x": ("openai", UNKNOWN)}


def _call(rnd: Random, day: date, which: str, **kw) -> Call:
    provider, model = P[which]
    started = datetime.combine(day, time(8), tzinfo=UTC) + timedelta(seconds=rnd.randint(0, 50_000))
    call = Call(provider=provider, operation="chat", request_model=model, attribution=Attribution(user="u"),
                started_at=started, stream=kw.pop("stream", False))
    call.response_model = model
    call.status = kw.pop("status", "ok")
    call.attempts = kw.pop("attempts", 1)
    usage = kw.pop("usage", "reported")
    call.usage = Usage(input=rnd.randint(100, 900), output=rnd.randint(10, 300), source=usage)
    cost = kw.pop("cost", "priced")
    if cost == "unpriced":
        call.cost = Unpriced("no price for gpt-9")
    elif cost == "priced":
        a, b = (Decimal(rnd.randint(1, 10**8)) / 10**10 for _ in range(2))
        call.cost = Cost(a, Decimal(0), Decimal(0), b, a + b, source=kw.pop("source", "genai-prices 0.2.3"),
                         price_entry=model)
    call.ended_at = call.started_at + timedelta(seconds=1)
    return call


def build_ledger(path: Path | str) -> list[Call]:
    """The ledger at `path` (a SQLite file) or a DSN, with the calls the exports are made from."""
    rnd = Random(5)
    calls = []
    for day in DAYS[:3]:  # DAYS[3]: no openai calls in the ledger (a missing day)
        for which in ("mini", "41", "sonnet"):
            calls += [_call(rnd, day, which) for _ in range(12)]
    calls += [_call(rnd, DAYS[3], "sonnet") for _ in range(5)]  # the export will lack these
    calls += [_call(rnd, D1, "sonnet", source="genai-prices 0.2.4") for _ in range(4)]  # a catalog update
    calls += [_call(rnd, D1, "x", cost="unpriced") for _ in range(3)]
    calls += [_call(rnd, DAYS[1], "mini", stream=True, usage="missing", cost=None) for _ in range(2)]
    calls += [_call(rnd, DAYS[1], "sonnet", status="error", usage="missing", cost=None) for _ in range(4)]
    calls += [_call(rnd, DAYS[2], "mini", attempts=3, cost=None, status="error", usage="missing")]
    calls += [_call(rnd, DAYS[2], "sonnet", status="error") for _ in range(6)]  # priced, but failed
    sink = LedgerSink(f"sqlite:///{path}" if isinstance(path, Path) else path)
    for c in calls:
        sink.on_call(c)
    sink.close()
    return calls


def cell_costs(calls: list[Call]) -> dict[tuple[date, str, str], Decimal]:
    out: dict[tuple[date, str, str], Decimal] = defaultdict(Decimal)
    for c in calls:
        out[(c.started_at.date(), c.provider, c.model)] += c.cost_usd
    return out


# (day, provider, ledger model) -> what the provider billed beyond the ledger's sum, and the expected cause
PLANTED = {
    (D1, "openai", UNKNOWN): ("+0.42", "unpriced calls"),
    (DAYS[1], "openai", MINI): ("+0.30", "streams without usage"),
    (DAYS[1], "anthropic", SONNET): ("+0.25", "failed calls"),
    (DAYS[2], "openai", MINI): ("+0.35", "SDK retries"),
    (D1, "anthropic", SONNET): ("x1.25", "price change: the ledger priced these calls with 2 price sources"),
    (DAYS[1], "openai", GPT41): ("x1.10", "price change"),
    (DAYS[2], "openai", GPT41): ("x1.10", "price change"),
    (DAYS[2], "anthropic", SONNET): ("failed", "blocked or failed calls"),
    (DAYS[3], "openai", MINI): ("+0.80", "missing day"),
    (DAYS[3], "anthropic", SONNET): ("absent", "missing in the export"),
}


def billed_cells(calls: list[Call]) -> dict[tuple[date, str, str], Decimal]:
    billed = dict(cell_costs(calls))
    billed.setdefault((DAYS[3], "openai", MINI), Decimal(0))
    for key, (how, _) in PLANTED.items():
        if how.startswith("+"):
            billed[key] = billed.get(key, Decimal(0)) + Decimal(how[1:])
        elif how.startswith("x"):
            billed[key] = (billed[key] * Decimal(how[1:])).quantize(Decimal("1E-10"))
        elif how == "failed":  # the failed calls were not billed
            billed[key] -= sum((c.cost_usd for c in calls if c.started_at.date() == key[0]
                                and c.provider == key[1] and c.status == "error"), Decimal(0))
        elif how == "absent":
            del billed[key]
    return billed


def _split(amount: Decimal) -> tuple[Decimal, Decimal]:
    first = (amount * Decimal("0.3")).quantize(Decimal("1E-12"))
    return first, amount - first


def write_openai(path: Path, billed: dict[tuple[date, str, str], Decimal]) -> None:
    """Two pages of daily buckets, line items `<model>, input` / `<model>, output` (the documented shape)."""
    buckets = []
    for day in DAYS:
        start = int(datetime.combine(day, time(), tzinfo=UTC).timestamp())
        results = []
        for (d, provider, model), amount in sorted(billed.items()):
            if d != day or provider != "openai":
                continue
            shown = model.rsplit("-", 3)[0] if model == MINI else model  # the export may drop the date
            for part, kind in zip(_split(amount), ("input", "output"), strict=True):
                results.append({"object": "organization.costs.result", "amount": {"value": part, "currency": "usd"},
                                "line_item": f"{shown}, {kind}", "project_id": "proj_abc"})
        buckets.append({"object": "bucket", "start_time": start, "end_time": start + 86400, "results": results})
    pages = [{"object": "page", "data": buckets[:2], "has_more": True, "next_page": "page_2"},
             {"object": "page", "data": buckets[2:], "has_more": False, "next_page": None}]
    # Decimal -> a JSON number with all its digits (what the API sends), never a rounded float.
    text = json.dumps(pages, default=lambda d: format(d, "f"))
    path.write_text(text.replace('"value": "', '"value": ').replace('", "currency"', ', "currency"'))


def write_anthropic(path: Path, billed: dict[tuple[date, str, str], Decimal]) -> None:
    data = []
    for day in DAYS:
        start = datetime.combine(day, time(), tzinfo=UTC)
        results = [{"currency": "USD", "amount": format(amount * 100, "f"), "workspace_id": "wrkspc_01",
                    "description": "Claude Sonnet 4.5 Usage - Input Tokens", "cost_type": "tokens",
                    "context_window": "0-200k", "model": model, "service_tier": "standard",
                    "token_type": "uncached_input_tokens"}
                   for (d, provider, model), amount in sorted(billed.items()) if d == day and provider == "anthropic"]
        data.append({"starting_at": start.isoformat().replace("+00:00", "Z"),
                     "ending_at": (start + timedelta(days=1)).isoformat().replace("+00:00", "Z"), "results": results})
    path.write_text(json.dumps({"data": data, "has_more": False, "next_page": None}))


@pytest.fixture
def setup(tmp_path: Path):
    calls = build_ledger(tmp_path / "ledger.db")
    billed = billed_cells(calls)
    write_openai(tmp_path / "openai.json", billed)
    write_anthropic(tmp_path / "anthropic.json", billed)
    return tmp_path, calls, billed


def test_exports_read_exactly_in_dollars(setup) -> None:
    tmp, _, billed = setup
    openai_total = sum(x.cost for x in load_openai(tmp / "openai.json"))
    assert openai_total == sum(v for (_, p, _), v in billed.items() if p == "openai")
    anthropic_total = sum(x.cost for x in load_anthropic(tmp / "anthropic.json"))  # cents -> dollars
    assert anthropic_total == sum(v for (_, p, _), v in billed.items() if p == "anthropic")
    (tmp / "bad.json").write_text('{"object": "page"}')
    with pytest.raises(ExportError, match=r"bad\.json"):
        load_openai(tmp / "bad.json")


def test_each_planted_discrepancy_is_found_and_explained(setup) -> None:
    tmp, calls, billed = setup
    check_planted(LedgerSource.open(tmp / "ledger.db"), tmp, calls, billed)


Billed = dict[tuple[date, str, str], Decimal]


def check_planted(src: LedgerSource, tmp: Path, calls: list[Call], billed: Billed) -> None:
    """Also run on PostgreSQL by tests/e2e/test_analytics_postgres.py."""
    lines = load_openai(tmp / "openai.json") + load_anthropic(tmp / "anthropic.json")
    result = reconcile(src, lines, Window(), parse_tolerance("5%"))
    by_key = {(c.day, c.provider, c.model): c for c in result.cells}
    ledger = cell_costs(calls)
    for (day, provider, model), (_, cause) in PLANTED.items():
        cell = by_key[(day, provider, base_model(model))]
        assert cell.over, (day, model)
        assert cell.ledger.cost == ledger.get((day, provider, model), Decimal(0))
        assert any(c.startswith(cause) for c in cell.causes), (day, model, cell.causes)
    flagged = {k for k, c in by_key.items() if c.over}
    assert flagged == {(d, p, base_model(m)) for d, p, m in PLANTED}
    assert len(flagged) == len(PLANTED)
    for key, cell in by_key.items():
        if key not in flagged:
            assert cell.diff == 0, key
    assert result.over
    assert result.billed_total == sum(billed.values())
    assert result.ledger_total == sum((c.cost_usd for c in calls if c.started_at.date() in DAYS), Decimal(0))
    text = result.render()
    assert "ABOVE the tolerance of 5%" in text and "streams without usage" in text


def test_command_exit_codes_csv_and_json(setup, capsys: pytest.CaptureFixture[str]) -> None:
    tmp, _, billed = setup
    ledger = str(tmp / "ledger.db")
    args = ["reconcile", "--ledger", ledger, "--openai", str(tmp / "openai.json"), "--anthropic",
            str(tmp / "anthropic.json")]
    assert cli_main([*args, "--tolerance", "5%"]) == 1
    assert "missing day" in capsys.readouterr().out
    assert cli_main([*args, "--tolerance", "$100", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert Decimal(doc["provider_usd"]) == sum(billed.values()) and doc["over_tolerance"] is False

    # The generic CSV, with the ledger's exact per-cell sums: nothing to explain, exit 0.
    exact = cell_costs(build_ledger(tmp / "again.db"))
    rows = [f"{d},{p},{m},{format(v, 'f')}" for (d, p, m), v in sorted(exact.items())]
    (tmp / "costs.csv").write_text("date,provider,model,cost_usd\n" + "\n".join(rows) + "\n")
    assert cli_main(["reconcile", "--ledger", str(tmp / "again.db"), "--csv", str(tmp / "costs.csv"),
                     "--tolerance", "0"]) == 0
    assert "within the tolerance" in capsys.readouterr().out
    assert cli_main(["reconcile", "--ledger", str(tmp / "again.db"), "--csv", str(tmp / "costs.csv"),
                     "--tolerance", "lots"]) == 2
    assert "--tolerance" in capsys.readouterr().err
