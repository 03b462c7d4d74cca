"""`spendmeter report` over a real SQLite ledger: CSV, JSON and table output carry the exact sums."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from test_analytics import T0, expected, make_calls, write_ledger

from spendmeter.cli import main as cli_main


@pytest.fixture
def ledger(tmp_path: Path):
    calls = make_calls()
    path = tmp_path / "ledger.db"
    write_ledger(f"sqlite:///{path}", calls)
    return str(path), calls


def test_csv_by_user_and_day_is_exact(ledger, capsys: pytest.CaptureFixture[str]) -> None:
    path, calls = ledger
    assert cli_main(["report", "--ledger", path, "--by", "user", "--by", "day", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    got = {(r["user"], r["day"]): (Decimal(r["cost_usd"]), int(r["tokens"]), int(r["calls"])) for r in rows}
    want = {k: v[:3] for k, v in expected(calls, ("user", "day")).items()}
    assert got == want


def test_json_window_and_filter(ledger, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path, calls = ledger
    monkeypatch.setenv("SPENDMETER_LEDGER", path)  # no --ledger: the environment, as init() reads it
    day2 = (T0.date()).isoformat()
    assert cli_main(["report", "--by", "model", "--since", day2, "--until", day2, "--feature", "support",
                     "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    keep = [c for c in calls if c.started_at.date() == T0.date() and c.attribution.feature == "support"]
    assert Decimal(doc["totals"]["cost_usd"]) == sum((c.cost_usd for c in keep), Decimal(0))
    assert {r["model"] for r in doc["rows"]} == {c.model for c in keep}


def test_table_and_errors(ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    path, calls = ledger
    assert cli_main(["report", "--ledger", path, "--by", "feature", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    total = sum((c.cost_usd for c in calls), Decimal(0))
    assert "TOTAL" in out and format(total.normalize(), "f") in out and len(out.splitlines()) == 2 + 2 + 2
    monkeypatch.delenv("SPENDMETER_LEDGER", raising=False)
    assert cli_main(["report"]) == 2
    assert "SPENDMETER_LEDGER" in capsys.readouterr().err
    assert cli_main(["report", "--ledger", str(tmp_path / "none.db")]) == 2
    assert "no ledger file" in capsys.readouterr().err
    assert cli_main(["report", "--ledger", path, "--days", "3", "--since", "2025-01-01"]) == 2
