"""`spendmeter price` and `spendmeter prices`, in-process via main() and once as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from spendmeter.cli import main

M = Decimal(1_000_000)
SRC = Path(__file__).resolve().parents[2] / "src"


def run_json(capsys, *argv: str) -> dict:
    assert main(["price", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_price_json_gpt5_priority(capsys):
    out = run_json(capsys, "gpt-5", "--input", "8", "--output", "82", "--reasoning", "64", "--tier", "priority",
                   "--at", "2026-11-01")
    expected = (8 * Decimal("2.50") + 82 * Decimal("20")) / M
    assert Decimal(out["total_usd"]) == expected
    assert out["total_usd"] == "0.00166"  # a decimal string at full precision, no float rounding
    assert out["cost_usd"] == {"input": str(8 * Decimal("2.5") / M), "cache_read": "0", "cache_write": "0",
                               "output": "0.00164"}
    assert out["provider"] == "openai"
    assert out["price_entry"] == "openai:gpt-5 [priority]"
    assert out["source"].startswith("genai-prices ")
    assert out["tokens"]["reasoning"] == 64


def test_price_json_long_context(capsys):
    out = run_json(capsys, "claude-sonnet-4-20250514", "--input", "250000", "--output", "1000", "--at",
                   "2026-03-01")
    assert out["total_usd"] == "1.5225"
    assert out["provider"] == "anthropic"
    assert "+overrides:" in out["source"]


def test_price_all_classes_and_batch(capsys):
    out = run_json(capsys, "claude-3-5-sonnet-20240620", "--input", "20", "--cache-read", "100", "--cache-write",
                   "1163", "--cache-write-1h", "10", "--output", "300", "--batch", "--at", "2025-06-01")
    half = Decimal("0.5")
    expected = (20 * Decimal(3) + 100 * Decimal("0.30") + 1163 * Decimal("3.75") + 10 * Decimal(6)
                + 300 * Decimal(15)) * half / M
    assert Decimal(out["total_usd"]) == expected
    assert Decimal(out["cost_usd"]["cache_write"]) == (1163 * Decimal("3.75") + 10 * Decimal(6)) * half / M


@pytest.mark.parametrize(("model", "provider"), [
    ("gpt-4o-mini", "openai"),
    ("text-embedding-ada-002", "openai"),
    ("claude-3-haiku-20240307", "anthropic"),
    ("anthropic.claude-3-haiku-20240307-v1:0", "aws.bedrock"),
    ("us.anthropic.claude-3-haiku-20240307-v1:0", "aws.bedrock"),
    ("claude-3-haiku@20240307", "gcp.vertex_ai"),
])
def test_provider_inferred_from_model_name(capsys, model, provider):
    assert run_json(capsys, model, "--input", "10")["provider"] == provider


def test_text_output(capsys):
    assert main(["price", "gpt-4o-mini", "--input", "176", "--cache-read", "1024", "--output", "100"]) == 0
    out = capsys.readouterr().out
    total = (176 * Decimal("0.15") + 1024 * Decimal("0.075") + 100 * Decimal("0.60")) / M
    assert "openai:gpt-4o-mini" in out and "genai-prices" in out
    assert "total" in out and format(total.normalize(), "f") in out


def test_unknown_model_exits_2_with_stderr(capsys):
    assert main(["price", "no-such-model", "--input", "5"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no-such-model" in captured.err


def test_reasoning_cannot_exceed_output(capsys):
    assert main(["price", "gpt-5", "--input", "1", "--output", "5", "--reasoning", "6"]) == 2
    assert "--reasoning" in capsys.readouterr().err


def test_negative_count_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["price", "gpt-5", "--input", "-1"])
    assert info.value.code == 2


def test_user_prices_file_and_env(capsys, tmp_path: Path, monkeypatch):
    path = tmp_path / "prices.toml"
    path.write_text('[models."house-llm"]\ninput = 1\noutput = 3\n')
    out = run_json(capsys, "house-llm", "--provider", "openai", "--input", "1000", "--output", "1000",
                   "--prices", str(path))
    assert Decimal(out["total_usd"]) == Decimal(4000) / M
    monkeypatch.setenv("SPENDMETER_PRICES", str(path))
    assert run_json(capsys, "house-llm", "--input", "1000")["total_usd"] == "0.001"


def test_bad_prices_file_exits_2(capsys, tmp_path: Path):
    path = tmp_path / "prices.toml"
    path.write_text('[models.x]\ninput = "abc"\n')
    assert main(["price", "gpt-4o", "--input", "1", "--prices", str(path)]) == 2
    err = capsys.readouterr().err
    assert "prices.toml" in err and "models.x.input" in err


def test_prices_lists_rates(capsys):
    assert main(["prices", "--provider", "openai", "gpt-4o-mini"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.split()[:2] == ["openai", "gpt-4o-mini"])
    assert line.split()[2:5] == ["0.15", "0.075", "0.15"]


def test_prices_json_and_glob(capsys):
    assert main(["prices", "claude-3-haiku*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["claude-3-haiku"]
    assert rows[0]["usd_per_1m"]["cache_write_1h"] == "0.5"


def test_prices_no_match(capsys):
    assert main(["prices", "zzz-nothing"]) == 1


def test_subprocess_module_entry_point():
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("SPENDMETER_PRICES", None)
    proc = subprocess.run(
        [sys.executable, "-m", "spendmeter.cli", "price", "davinci-002", "--input", "10", "--output", "16",
         "--json"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert Decimal(json.loads(proc.stdout)["total_usd"]) == (10 * Decimal(2) + 16 * Decimal(2)) / M
    bad = subprocess.run([sys.executable, "-m", "spendmeter.cli", "price", "nope-1", "--input", "1"],
                         capture_output=True, text=True, env=env, timeout=60, check=False)
    assert bad.returncode == 2 and "nope-1" in bad.stderr and bad.stdout == ""


def test_prices_lists_user_entries_once(capsys, tmp_path: Path):
    path = tmp_path / "prices.toml"
    path.write_text('[models."house-llm"]\ninput = 1\noutput = 3\n')
    assert main(["prices", "house", "--prices", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["usd_per_1m"]["output"]) for r in rows] == [("house-llm", "3")]
    assert rows[0]["source"].startswith("user:")
