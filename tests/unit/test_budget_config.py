"""The budgets file: a good file loads; each kind of mistake names file, key and reason."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from spendmeter.budgets import load_budgets, parse_budgets
from spendmeter.errors import ConfigError

GOOD = {
    "timezone": "Europe/Berlin",
    "store": "memory",
    "budgets": [
        {
            "name": "global-monthly",
            "scope": "global",
            "period": "month",
            "limit_usd": 5000,
            "warn_at": [0.8, 0.5],
        },
        {"name": "user-daily", "scope": "user", "period": "day", "limit_usd": 2.00, "action": "block"},
        {
            "name": "support-feature-monthly",
            "scope": "feature",
            "match": {"feature": "support"},
            "period": "month",
            "limit_usd": "800.10",
        },
        {
            "name": "gpt-weekly",
            "scope": "model",
            "match": {"model": ["gpt-4o", "gpt-4o-mini"], "provider": "openai"},
            "period": "week",
            "limit_usd": 100,
            "action": "block",
            "estimate": True,
        },
    ],
}


def write(tmp_path: Path, data: object, name: str = "budgets.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_good_file_loads_with_defaults(tmp_path: Path) -> None:
    config = load_budgets(write(tmp_path, GOOD))
    assert config.timezone == "Europe/Berlin"
    assert config.store_path is None
    assert config.gauge_max_keys == 1000
    by_name = {b.name: b for b in config.budgets}
    assert list(by_name) == ["global-monthly", "user-daily", "support-feature-monthly", "gpt-weekly"]
    assert by_name["global-monthly"].warn_at == (0.5, 0.8)  # sorted
    assert by_name["user-daily"].warn_at == (0.8,)  # the default
    assert by_name["user-daily"].limit_usd == Decimal("2.0")
    assert by_name["user-daily"].action == "block"
    assert by_name["global-monthly"].action == "alert"
    assert by_name["support-feature-monthly"].limit_usd == Decimal("800.10")
    assert by_name["support-feature-monthly"].match == {"feature": frozenset({"support"})}
    assert by_name["gpt-weekly"].match["model"] == frozenset({"gpt-4o", "gpt-4o-mini"})
    assert by_name["gpt-weekly"].estimate is True


def test_the_documented_example_loads(tmp_path: Path) -> None:
    text = """\
timezone: UTC
store: memory
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
    config = load_budgets(write(tmp_path, text))
    assert [b.scope for b in config.budgets] == ["global", "user", "feature"]


def test_sqlite_store_path_is_relative_to_the_budgets_file(tmp_path: Path) -> None:
    data = dict(GOOD, store="sqlite:///data/spend.db")
    config = load_budgets(write(tmp_path, data))
    assert config.store_path == str((tmp_path / "data" / "spend.db").resolve())
    absolute = dict(GOOD, store=f"sqlite:///{tmp_path}/abs.db")  # four slashes: absolute
    assert load_budgets(write(tmp_path, absolute)).store_path == str(tmp_path / "abs.db")


def _mutate(path: str, value: object) -> dict:
    data = copy.deepcopy(GOOD)
    target: dict = data
    parts = path.split(".")
    for part in parts[:-1]:
        target = target["budgets"][int(part[8:-1])] if part.startswith("budgets[") else target[part]
    if value is _DELETE:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return data


_DELETE = object()

BAD = [
    # (where, new value, key named in the error, words in the reason)
    ("budgets[1].period", "daily", "budgets[1].period", "expected one of day, week, month, got 'daily'"),
    ("budgets[0].scope", "team", "budgets[0].scope", "expected one of global, user, feature, agent, model"),
    ("budgets[1].action", "deny", "budgets[1].action", "expected one of alert, block"),
    ("budgets[1].limit_usd", -1, "budgets[1].limit_usd", "positive amount"),
    ("budgets[1].limit_usd", 0, "budgets[1].limit_usd", "positive amount"),
    ("budgets[1].limit_usd", "lots", "budgets[1].limit_usd", "positive amount"),
    ("budgets[1].limit_usd", True, "budgets[1].limit_usd", "positive amount"),
    ("budgets[1].limit_usd", _DELETE, "budgets[1].limit_usd", "missing"),
    ("budgets[1].name", _DELETE, "budgets[1].name", "missing"),
    ("budgets[1].name", "has space", "budgets[1].name", "letters, digits"),
    ("budgets[1].limit", 2, "budgets[1].limit", "unknown key"),
    ("budgets[0].warn_at", [0.5, -0.1], "budgets[0].warn_at[1]", "ratio of the limit"),
    ("budgets[0].warn_at", 0.8, "budgets[0].warn_at", "list of ratios"),
    ("budgets[0].warn_at", [0.8, 0.8], "budgets[0].warn_at", "duplicate"),
    ("budgets[2].match", {"team": "x"}, "budgets[2].match.team", "unknown label"),
    ("budgets[2].match", {"feature": ""}, "budgets[2].match.feature", "non-empty string"),
    ("budgets[2].match", "support", "budgets[2].match", "expected a mapping"),
    ("budgets[0].estimate", True, "budgets[0].estimate", "only applies to budgets with action: block"),
    ("budgets[1].estimate", "yes", "budgets[1].estimate", "true or false"),
    ("timezone", "Mars/Olympus", "timezone", "unknown IANA timezone"),
    ("timezone", 5, "timezone", "IANA timezone name"),
    ("store", "redis://x", "store", "expected memory, sqlite:///path/to/spend.db or postgresql://"),
    ("gauge_max_keys", 0, "gauge_max_keys", "positive integer"),
    ("budgets", {"a": 1}, "budgets", "expected a list"),
    ("alerts", [], "alerts", "unknown key"),
]


@pytest.mark.parametrize(("where", "value", "key", "reason"), BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD])
def test_bad_key_is_named_with_file_and_reason(tmp_path: Path, where: str, value: object, key: str, reason: str):
    path = write(tmp_path, _mutate(where, value))
    with pytest.raises(ConfigError) as info:
        load_budgets(path)
    err = info.value
    assert err.file == str(path)
    assert err.key == key
    assert reason in str(err)
    assert str(path) in str(err) and repr(key) in str(err)


def test_duplicate_budget_names_are_an_error(tmp_path: Path) -> None:
    data = copy.deepcopy(GOOD)
    data["budgets"][2]["name"] = "user-daily"
    with pytest.raises(ConfigError) as info:
        load_budgets(write(tmp_path, data))
    assert info.value.key == "budgets[2].name"
    assert "duplicate budget name 'user-daily' (also budgets[1])" in str(info.value)


def test_a_key_written_twice_in_yaml_is_an_error(tmp_path: Path) -> None:
    text = "budgets:\n  - name: a\n    scope: global\n    period: day\n    limit_usd: 1\n    limit_usd: 100\n"
    with pytest.raises(ConfigError, match="duplicate key 'limit_usd'") as info:
        load_budgets(write(tmp_path, text))
    assert info.value.file is not None


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read budgets file"):
        load_budgets(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_budgets(write(tmp_path, "budgets: [\n"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_budgets(write(tmp_path, "- just a list\n"))


def test_empty_file_means_no_budgets() -> None:
    config = parse_budgets(None)
    assert config.budgets == () and config.timezone == "UTC" and config.store == "memory"
