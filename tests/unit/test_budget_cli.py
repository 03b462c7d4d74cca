"""`spendmeter budgets check FILE`: one line per budget and exit 0, or the error on stderr and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from spendmeter.cli import main

GOOD = """\
timezone: Europe/Berlin
store: sqlite:///spend.db
budgets:
  - name: global-monthly
    scope: global
    period: month
    limit_usd: 5000
    warn_at: [0.5, 0.8]
  - name: user-daily
    scope: user
    period: day
    limit_usd: 2.00
    action: block
  - name: support-feature-monthly
    scope: feature
    match: {feature: support}
    period: month
    limit_usd: 800
"""


def test_check_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(GOOD)
    assert main(["budgets", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert err == ""
    assert len(lines) == 4
    assert "3 budget(s), timezone Europe/Berlin" in lines[0]
    assert str((tmp_path / "spend.db").resolve()) in lines[0]
    assert lines[1].strip() == "global-monthly: all calls, $5,000.00 per month, alert, warn at 50%, 80%"
    assert lines[2].strip() == "user-daily: each user, $2.00 per day, block, warn at 80%"
    assert lines[3].strip() == (
        "support-feature-monthly: each feature where feature=support, $800.00 per month, alert, warn at 80%"
    )
    assert not (tmp_path / "spend.db").exists()  # checking a file opens no store


def test_check_invalid_file_exits_2_with_the_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(GOOD.replace("period: day", "period: daily"))
    assert main(["budgets", "check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"file {path}, key 'budgets[1].period': expected one of day, week, month, got 'daily'" in err


def test_check_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["budgets", "check", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read budgets file" in capsys.readouterr().err
