"""The ledger's schema-3 columns: the `tools` cost class, the list-price figure beside a billed cost, tool
uses; and a schema-2 ledger gaining them when opened."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal

from spendmeter.call import Attribution, Call, Cost, Usage
from spendmeter.sinks.ledger import LedgerSink

Z = Decimal(0)


def _call(cost: Cost, tool_uses: tuple[tuple[str, int], ...] = ()) -> Call:
    call = Call(provider="anthropic", operation="messages", request_model="claude-sonnet-4-5",
                attribution=Attribution(user="alice"), started_at=datetime(2026, 11, 30, 12, tzinfo=UTC))
    call.usage = Usage(input=1000, output=10, source="reported")
    call.tool_uses = tool_uses
    call.cost = cost
    return call


def _rows(path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM spendmeter_ledger ORDER BY id").fetchall()
    finally:
        conn.close()


def test_tools_class_list_price_and_tool_uses(tmp_path):
    path = tmp_path / "ledger.db"
    sink = LedgerSink(f"sqlite:///{path}", service_name="t")
    searched = Cost(Decimal("0.003"), Z, Z, Decimal("0.00015"), Decimal("0.03315"), "genai-prices", "x",
                    tools=Decimal("0.03"), tool_costs=(("web_search", Decimal("0.03")),))
    billed = Cost(Decimal("0.00015"), Z, Z, Decimal("0.00006"), Decimal("0.0002"), "openrouter response usage.cost",
                  "x", list_total=Decimal("0.00021"))
    sink.on_call(_call(searched, (("web_search", 3), ("web_fetch", 1))))
    sink.on_call(_call(billed))
    sink.close()
    first, second = _rows(path)
    assert Decimal(first["cost_tools_usd"]) == Decimal("0.03") and first["cost_list_usd"] is None
    classes = ("cost_input_usd", "cost_cache_read_usd", "cost_cache_write_usd", "cost_output_usd", "cost_tools_usd")
    assert sum(Decimal(first[c]) for c in classes) == Decimal(first["cost_total_usd"])
    assert first["tool_uses"] == '{"web_fetch":1,"web_search":3}'
    assert Decimal(second["cost_total_usd"]) == Decimal("0.0002")
    assert Decimal(second["cost_list_usd"]) == Decimal("0.00021") and second["tool_uses"] is None


def test_a_schema_2_ledger_gains_the_columns(tmp_path):
    path = tmp_path / "ledger.db"
    LedgerSink(f"sqlite:///{path}", service_name="t").close()
    conn = sqlite3.connect(path)
    for column in ("cost_tools_usd", "cost_list_usd", "tool_uses"):
        conn.execute(f"ALTER TABLE spendmeter_ledger DROP COLUMN {column}")
    conn.execute("UPDATE spendmeter_schema_version SET version = 2 WHERE component = 'ledger'")
    conn.commit()
    conn.close()
    sink = LedgerSink(f"sqlite:///{path}", service_name="t")
    sink.on_call(_call(Cost(Z, Z, Z, Z, Decimal("0.01"), "s", "x", tools=Decimal("0.01")), (("web_search", 1),)))
    sink.close()
    assert _rows(path)[0]["tool_uses"] == '{"web_search":1}'
