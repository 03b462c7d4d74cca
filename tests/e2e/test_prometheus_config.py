"""The shipped Prometheus and Alertmanager files pass their own tools, and the tests load the same files."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import servers
import yaml

PROM_DIR = servers.PROMETHEUS_DIR
TEST_ADDRESSES = {
    "spendmeter": "127.0.0.1:19464",
    "alertmanager": "127.0.0.1:19093",
    "prometheus": "127.0.0.1:19090",
}


def _run(argv: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{output}"
    return output


def _leaves(node: Any, path: str = "") -> dict[str, Any]:
    """Flatten parsed YAML into {dotted.path: scalar} so two configs can be compared leaf by leaf."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{path}.{key}"))
        return out
    if isinstance(node, list):
        out = {}
        for i, value in enumerate(node):
            out.update(_leaves(value, f"{path}[{i}]"))
        return out
    return {path: node}


def _differences(shipped: str, rendered: str) -> dict[str, tuple[Any, Any]]:
    a, b = _leaves(yaml.safe_load(shipped)), _leaves(yaml.safe_load(rendered))
    assert a.keys() == b.keys(), "rendering changed the structure of the file"
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def test_promtool_check_config_on_the_rendered_config(promtool_bin: str, tmp_path: Path) -> None:
    config = servers.render_prometheus_dir(tmp_path, TEST_ADDRESSES, servers.FAST_PROMETHEUS_TIMINGS)
    output = _run([promtool_bin, "check", "config", str(config)])
    assert "2 rule files found" in output


def test_promtool_check_rules(promtool_bin: str) -> None:
    rule_files = sorted(str(p) for p in (PROM_DIR / "rules").glob("*.yml"))
    assert len(rule_files) == 2
    output = _run([promtool_bin, "check", "rules", *rule_files])
    assert output.count("SUCCESS") == 2


def test_promtool_unit_tests_cover_every_alert(promtool_bin: str) -> None:
    test_files = sorted((PROM_DIR / "tests").glob("*.yml"))
    assert test_files
    output = _run([promtool_bin, "test", "rules", *map(str, test_files)], cwd=PROM_DIR)
    assert "FAILED" not in output

    alerts = {
        rule["alert"]
        for group in yaml.safe_load((PROM_DIR / "rules" / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    fires, quiet = set(), set()
    for path in test_files:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts - fires == set(), "alerts never shown to fire in prometheus/tests"
    assert alerts - quiet == set(), "alerts never shown to stay quiet in prometheus/tests"


def test_every_alert_has_severity_summary_and_runbook() -> None:
    headings = set(re.findall(r"(?m)^#+ (\S+)$", (servers.REPO / "docs" / "alerting.md").read_text()))
    for group in yaml.safe_load((PROM_DIR / "rules" / "alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            anchor = rule["annotations"]["runbook"]
            assert anchor == f"docs/alerting.md#{rule['alert'].lower()}"
            assert rule["alert"] in headings, f"docs/alerting.md lacks a section {rule['alert']}"


def test_amtool_check_config_on_shipped_and_rendered(amtool_bin: str, tmp_path: Path) -> None:
    _run([amtool_bin, "check-config", str(PROM_DIR / "alertmanager.yml")])
    rendered = servers.render_alertmanager_config(tmp_path, {"webhook": "127.0.0.1:19095"},
                                                  servers.FAST_ALERTMANAGER_TIMINGS)
    output = _run([amtool_bin, "check-config", str(rendered)])
    assert "inhibit rules" in output


def test_rendered_prometheus_config_differs_only_in_addresses_and_timings() -> None:
    shipped = (PROM_DIR / "prometheus.yml").read_text()
    only_addresses = servers.render_config(shipped, TEST_ADDRESSES)
    diff = _differences(shipped, only_addresses)
    assert diff, "nothing was rendered"
    for path, (old, new) in diff.items():
        assert old in servers.SHIPPED_ADDRESSES.values(), path
        assert new in TEST_ADDRESSES.values(), path

    fast = servers.render_config(shipped, TEST_ADDRESSES, servers.FAST_PROMETHEUS_TIMINGS)
    for path in _differences(only_addresses, fast):
        assert path.rsplit(".", 1)[-1] in servers.FAST_PROMETHEUS_TIMINGS, path


def test_rendered_alertmanager_config_differs_only_in_webhook_and_timings() -> None:
    shipped = (PROM_DIR / "alertmanager.yml").read_text()
    rendered = servers.render_config(shipped, {"webhook": "127.0.0.1:19095"},
                                     servers.FAST_ALERTMANAGER_TIMINGS)
    diff = _differences(shipped, rendered)
    webhook_paths = {p for p, (old, _) in diff.items() if old == "http://webhook:9095/alerts"}
    assert webhook_paths, "the webhook URL was not rendered"
    for path in webhook_paths:
        assert diff[path][1] == "http://127.0.0.1:19095/alerts"
    for path in diff.keys() - webhook_paths:
        assert path.rsplit(".", 1)[-1] in servers.FAST_ALERTMANAGER_TIMINGS, path


def test_render_refuses_an_address_the_file_lacks() -> None:
    with pytest.raises(ValueError, match="spendmeter:9464"):
        servers.render_config("scrape_configs: []\n", {"spendmeter": "127.0.0.1:1"})
    with pytest.raises(ValueError, match="group_wait"):
        servers.render_config("route: {}\n", {}, {"group_wait": "1s"})
