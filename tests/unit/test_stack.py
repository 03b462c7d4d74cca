"""`spendmeter stack write`: the repository's Prometheus, Alertmanager and Grafana files, ready to run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from test_compose import bind_mounts, compose_schema

from spendmeter import stack
from spendmeter.cli import main

ROOT = Path(__file__).resolve().parents[2]


def repo_files() -> dict[str, bytes]:
    out = {str(p.relative_to(ROOT)): p.read_bytes()
           for name in stack.SHIPPED_DIRS for p in sorted((ROOT / name).rglob("*")) if p.is_file()}
    out["docker-compose.yml"] = (ROOT / "docker-compose.yml").read_bytes()
    return out


def test_a_checkout_ships_exactly_the_repository_files() -> None:
    assert stack.shipped_files() == repo_files()


def test_write_then_every_file_is_the_repository_one_but_two(tmp_path: Path) -> None:
    assert main(["stack", "write", str(tmp_path), "--target", "10.0.0.7:9100"]) == 0
    written = {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    shipped = repo_files()
    rendered = {"prometheus/prometheus.yml", "docker-compose.yml"}
    assert set(written) == set(shipped) | {stack.WEBHOOK}
    for path in set(shipped) - rendered:
        assert written[path] == shipped[path], path
    assert written[stack.WEBHOOK] == (ROOT / "src/spendmeter/demo/webhook.py").read_bytes()
    prometheus = yaml.safe_load(written["prometheus/prometheus.yml"])
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "spendmeter"]
    assert [t for sc in job["static_configs"] for t in sc["targets"]] == ["10.0.0.7:9100"]
    # everything else in prometheus.yml is unchanged
    assert written["prometheus/prometheus.yml"].decode() == shipped["prometheus/prometheus.yml"].decode().replace(
        "spendmeter:9464", "10.0.0.7:9100")


@pytest.fixture()
def written_compose(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    stack.write(tmp_path)
    return tmp_path, yaml.safe_load((tmp_path / "docker-compose.yml").read_text())


def test_compose_is_valid_and_mounts_only_written_files(written_compose: tuple[Path, dict[str, Any]]) -> None:
    directory, compose = written_compose
    schema = compose_schema()
    errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(compose))
    assert not errors, [e.message for e in errors]
    services = compose["services"]
    assert set(services) == {"prometheus", "alertmanager", "webhook", "grafana"}
    for name, service in services.items():
        for source in bind_mounts(service).values():
            path = (directory / source).resolve()
            assert path.exists() and directory in path.parents, f"{name}: {source}"
        for volume in service.get("volumes", []):
            named = volume.split(":")[0]
            if not named.startswith((".", "/")):
                assert named in compose["volumes"], named
        assert all(p.startswith("127.0.0.1:") for p in service.get("ports", [])), name
    assert "host.docker.internal:host-gateway" in services["prometheus"]["extra_hosts"]
    dashboards = (directory / "grafana/dashboards")
    assert {p.name for p in dashboards.glob("*.json")} >= {"overview.json", "user.json", "budgets.json"}
    for p in dashboards.glob("*.json"):
        json.loads(p.read_text())


def test_write_refuses_to_replace_a_changed_file_unless_forced(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    stack.write(tmp_path)
    stack.write(tmp_path)  # the same files again: nothing to refuse
    (tmp_path / "prometheus/alertmanager.yml").write_text("# mine\n")
    assert main(["stack", "write", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "prometheus/alertmanager.yml").read_text() == "# mine\n"
    assert main(["stack", "write", str(tmp_path), "--force"]) == 0
    shipped = (ROOT / "prometheus/alertmanager.yml").read_bytes()
    assert (tmp_path / "prometheus/alertmanager.yml").read_bytes() == shipped


@pytest.mark.parametrize("target", ["", "localhost", "http://x:9464", "a b:1", "host:port"])
def test_a_bad_target_is_refused(tmp_path: Path, target: str) -> None:
    assert main(["stack", "write", str(tmp_path), "--target", target]) == 2
    assert not any(tmp_path.iterdir())
