"""The Grafana dashboards: generated from code, valid, and querying only the public metric contract."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from spendmeter import dashboards
from spendmeter.dashboards import (
    BUILTIN_SUBSTITUTIONS,
    all_panel_queries,
    iter_panels,
    load_all,
    panel_queries,
    variable_query,
    variables_used,
)

ROOT = Path(__file__).resolve().parents[2]
DASH_DIR = ROOT / "grafana" / "dashboards"
PROVISIONING = ROOT / "grafana" / "provisioning"

# The public contract (docs: CONVENTIONS.md and the budget gauges), plus Prometheus' own ALERTS.
KNOWN_METRICS = {
    "llm_cost_usd_total",
    "llm_tokens_total",
    "llm_reasoning_tokens_total",
    "llm_requests_total",
    "llm_request_duration_seconds_bucket",
    "llm_request_duration_seconds_sum",
    "llm_request_duration_seconds_count",
    "llm_unpriced_requests_total",
    "spendmeter_internal_errors_total",
    "llm_budget_limit_usd",
    "llm_budget_spent_usd",
    "llm_budget_utilization_ratio",
    "llm_budget_warn_ratio",
    "llm_budget_period_end_timestamp_seconds",
    "llm_budget_users_over_limit",
    "ALERTS",
}
ALERT_NAMES = {
    "LLMBudgetWarning", "LLMBudgetExhausted", "LLMBudgetBurnRateForecast", "LLMUserDailyLimitExceeded",
    "LLMSpendSpike", "LLMUnpricedModelCalls", "LLMStreamsWithoutUsage", "SpendmeterTargetDown",
}
PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "inf", "nan",
}
GRAFANA_BUILTINS = set(BUILTIN_SUBSTITUTIONS) | {"__all"}

REQUIRED_PANELS = {
    "spendmeter-overview": [
        "Spend today", "Spend month to date", "Global budget utilization", "Spend per day by feature",
        "Top users", "Spend by provider and model", "Tokens by class (tokens/s)", "Cache hit ratio",
        "Cost per request", "Blocked and failed calls", "Unpriced calls", "Latency p50 / p95",
    ],
    "spendmeter-user": [
        "Spend against the daily limit", "Declared daily limit", "Spend rate by feature (USD/hour)",
        "Spend rate by agent (USD/hour)", "Spend rate by model (USD/hour)",
    ],
    "spendmeter-budgets": [
        "Budget utilization", "Spent, limit and forecast", "Forecast at period end / limit",
        "Budget alerts firing",
    ],
}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression, found crudely: what is left once strings, label matchers,
    ranges, grouping clauses, function calls, keywords and numbers are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, is_call = match.group(1), match.group(2)
        if not is_call and word.lower() not in PROMQL_KEYWORDS:
            names.add(word)
    return names


@pytest.fixture(scope="module")
def committed() -> dict[str, dict[str, Any]]:
    return load_all(DASH_DIR)


def test_committed_json_is_what_the_code_generates() -> None:
    assert dashboards.stale(DASH_DIR) == [], "run: python -m spendmeter.dashboards"


def test_check_cli_fails_on_a_hand_edited_dashboard(tmp_path: Path) -> None:
    from spendmeter.dashboards.__main__ import main

    dashboards.write(tmp_path)
    assert main(["--check", "--dir", str(tmp_path)]) == 0
    (tmp_path / "user.json").write_text((tmp_path / "user.json").read_text().replace("now-6h", "now-7h"))
    assert main(["--check", "--dir", str(tmp_path)]) == 1


def test_uids_are_stable_and_unique(committed: dict[str, dict[str, Any]]) -> None:
    uids = [d["uid"] for d in committed.values()]
    assert sorted(uids) == sorted(REQUIRED_PANELS)
    assert len(set(uids)) == len(uids)
    for dash in committed.values():
        assert dash["schemaVersion"] >= 39
        ids = [p["id"] for p in iter_panels(dash)]
        assert len(set(ids)) == len(ids), f"{dash['uid']}: duplicate panel ids"


@pytest.mark.parametrize("uid", sorted(REQUIRED_PANELS))
def test_required_panels_exist(committed: dict[str, dict[str, Any]], uid: str) -> None:
    (dash,) = [d for d in committed.values() if d["uid"] == uid]
    titles = {p["title"] for p in iter_panels(dash)}
    assert set(REQUIRED_PANELS[uid]) <= titles, set(REQUIRED_PANELS[uid]) - titles


def test_panels_fit_the_grid_without_overlapping(committed: dict[str, dict[str, Any]]) -> None:
    for dash in committed.values():
        taken: set[tuple[int, int]] = set()
        for panel in iter_panels(dash):
            g = panel["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24, panel["title"]
            cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & taken, f"{dash['uid']}: {panel['title']} overlaps another panel"
            taken |= cells


def test_every_query_uses_the_datasource_variable(committed: dict[str, dict[str, Any]]) -> None:
    allowed = {"${datasource}", "$datasource", "prometheus"}
    for dash in committed.values():
        (ds_var,) = [v for v in dash["templating"]["list"] if v["name"] == "datasource"]
        assert ds_var["type"] == "datasource" and ds_var["query"] == "prometheus"
        for panel in iter_panels(dash):
            refs = [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]
            for ref in refs:
                assert ref and ref["type"] == "prometheus" and ref["uid"] in allowed, panel["title"]
        for var in dash["templating"]["list"]:
            if var["type"] == "query":
                assert var["datasource"]["uid"] in allowed, var["name"]


def test_every_variable_used_is_defined(committed: dict[str, dict[str, Any]]) -> None:
    for dash in committed.values():
        defined = {v["name"] for v in dash["templating"]["list"]} | GRAFANA_BUILTINS
        texts = [variable_query(v) for v in dash["templating"]["list"]]
        texts += [t["expr"] for p in iter_panels(dash) for t in p.get("targets", [])]
        texts += [p.get("title", "") for p in iter_panels(dash)]
        for text in texts:
            undefined = variables_used(text) - defined
            assert not undefined, f"{dash['uid']}: {undefined} in {text}"


def test_queries_use_only_contract_metrics(committed: dict[str, dict[str, Any]]) -> None:
    seen: set[str] = set()
    for dash in committed.values():
        for var in dash["templating"]["list"]:
            if var["type"] == "query":
                definition = variable_query(var)
                assert re.fullmatch(r"label_values\((\w+)(\{.*\})?, *\w+\)", definition), definition
                seen |= metric_names(definition.removeprefix("label_values(").rsplit(",", 1)[0])
        for uid_title_expr in panel_queries(dash):
            seen |= metric_names(uid_title_expr[1])
    assert seen <= KNOWN_METRICS, seen - KNOWN_METRICS
    # and most of the contract is on screen somewhere
    assert len(seen) >= len(KNOWN_METRICS) - 3, KNOWN_METRICS - seen


def test_alert_names_in_queries_exist(committed: dict[str, dict[str, Any]]) -> None:
    for _uid, _title, expr in all_panel_queries(DASH_DIR):
        for name in re.findall(r'alertname="(\w+)"', expr):
            assert name in ALERT_NAMES


def test_alerts_queries_cannot_come_back_empty(committed: dict[str, dict[str, Any]]) -> None:
    """ALERTS only exists while something fires: every query on it needs a fallback."""
    for _uid, title, expr in all_panel_queries(DASH_DIR):
        if "ALERTS" in expr:
            assert expr.rstrip().endswith("or vector(0)"), title


def test_metric_name_extraction() -> None:
    expr = ('histogram_quantile(0.95, sum by (model, le) (rate(llm_request_duration_seconds_bucket'
            '{model=~"gpt.*|x{2}"}[1m]))) / on (a) group_left () foo:bar offset 5m or vector(0)')
    assert metric_names(expr) == {"llm_request_duration_seconds_bucket", "foo:bar"}


def test_panel_queries_substitutes_every_variable_form() -> None:
    dash = {
        "templating": {"list": [{"name": "user"}, {"name": "model"}]},
        "panels": [
            {"title": "row", "type": "row", "panels": [
                {"title": "nested",
                 "targets": [{"expr": 'x{user=~"${user:regex}", model=~"[[model]]"}[$__range]'}]},
            ]},
            {"title": "plain", "targets": [{"expr": 'rate(y{user=~"$user"}[$__rate_interval])'},
                                          {"expr": "hidden{$model}", "hide": True}]},
        ],
    }
    assert panel_queries(dash) == [
        ("nested", 'x{user=~".*", model=~".*"}[1h]'),
        ("plain", 'rate(y{user=~".*"}[1m])'),
    ]
    assert panel_queries(dash, {"user": "alice", "model": "m", "__range": "5m", "__rate_interval": "2m"}) == [
        ("nested", 'x{user=~"alice", model=~"m"}[5m]'),
        ("plain", 'rate(y{user=~"alice"}[2m])'),
    ]
    with pytest.raises(ValueError, match=r"\$user"):
        panel_queries(dash, {"model": "m"})


def test_all_queries_are_fully_substituted() -> None:
    queries = all_panel_queries(DASH_DIR)
    assert len(queries) >= 40
    for uid, title, expr in queries:
        assert "$" not in expr and "[[" not in expr, (uid, title)


def test_queries_parse_as_promql(tmp_path: Path) -> None:
    """promtool parses every query, as a recording rule, exactly as Prometheus would."""
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is required in CI (Debian package: prometheus)")
        pytest.skip("promtool not installed")
    rules = [{"record": f"dashboard_query_{i}", "expr": expr}
             for i, (_uid, _title, expr) in enumerate(all_panel_queries(DASH_DIR))]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning_points_at_the_datasource_the_dashboards_default_to() -> None:
    ds = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (prom,) = [d for d in ds["datasources"] if d["type"] == "prometheus"]
    assert prom["uid"] == "prometheus" and prom["url"] == "http://prometheus:9090" and prom["isDefault"]
    prometheus_yml = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    assert prom["jsonData"]["timeInterval"] == prometheus_yml["global"]["scrape_interval"]
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "spendmeter.yml").read_text())["providers"]
    assert [p["type"] for p in providers] == ["file"]
    for dash in load_all(DASH_DIR).values():
        (ds_var,) = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
        assert ds_var["current"]["value"] == prom["uid"]
