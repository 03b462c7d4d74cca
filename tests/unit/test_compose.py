"""docker-compose.yml, checked offline: against the Compose specification's JSON schema, and against the repo.

The schema is the copy that the PyPI package check-jsonschema ships (vendored from compose-spec); nothing
is fetched from the network.
"""

from __future__ import annotations

import copy
import glob
import json
import re
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
# What the e2e suite loads (prometheus/prometheus.yml says so in its header): compose must mount the same.
E2E_PROMETHEUS_CONFIG = "prometheus/prometheus.yml"
E2E_RULES_DIR = "prometheus/rules"
E2E_ALERTMANAGER_CONFIG = "prometheus/alertmanager.yml"


def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> repo-relative host path, for every bind mount (short or long syntax)."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        elif volume.get("type") == "bind":
            source, target = volume["source"], volume["target"]
        else:
            continue
        if source.startswith((".", "/")):
            out[target] = source
    return out


def host_path(source: str) -> Path:
    return (ROOT / source).resolve()


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = compose_schema()
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    errors = sorted(validator_cls(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_schema_rejects_a_broken_file(compose: dict[str, Any]) -> None:
    """The schema check above can fail: a misspelt key and a wrong type are both caught."""
    broken = copy.deepcopy(compose)
    broken["services"]["prometheus"]["volumnes"] = broken["services"]["prometheus"].pop("volumes")
    broken["services"]["grafana"]["ports"] = "3000:3000"
    validator = jsonschema.Draft202012Validator(compose_schema())
    paths = {tuple(e.path) for e in validator.iter_errors(broken)}
    assert ("services", "prometheus") in paths
    assert ("services", "grafana", "ports") in paths


def test_every_image_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: {image} has no tag"
        pinned = tag != "latest" and re.match(r"v?\d+\.\d+\.\d+", tag)
        assert pinned, f"{name}: {image} is not a pinned version"


def test_every_bind_mount_exists_in_the_repo(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for target, source in bind_mounts(service).items():
            path = host_path(source)
            assert path.exists(), f"{name}: {source} (mounted at {target}) is not in the repo"
            assert path == ROOT or ROOT in path.parents, f"{name}: {source} is outside the repo"


def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source and not source.startswith((".", "/")):
                assert source in compose.get("volumes", {}), source


def _container_config_path(service: dict[str, Any], flag: str) -> str:
    (value,) = [c.split("=", 1)[1] for c in service["command"] if c.startswith(flag + "=")]
    return value


def test_prometheus_runs_the_config_and_rules_the_e2e_tests_load(services: dict[str, dict[str, Any]]) -> None:
    prom = services["prometheus"]
    mounts = bind_mounts(prom)
    config_target = _container_config_path(prom, "--config.file")
    assert host_path(mounts[config_target]) == ROOT / E2E_PROMETHEUS_CONFIG
    rules_targets = [t for t, s in mounts.items() if host_path(s) == ROOT / E2E_RULES_DIR]
    assert len(rules_targets) == 1, "prometheus/rules must be mounted once"

    config = yaml.safe_load((ROOT / E2E_PROMETHEUS_CONFIG).read_text())
    config_dir = PurePosixPath(config_target).parent
    loaded: list[str] = []
    for pattern in config["rule_files"]:
        in_container = config_dir / pattern  # Prometheus resolves rule_files relative to the config file
        relative = in_container.relative_to(rules_targets[0])  # raises if outside the rules mount
        loaded += glob.glob(str(ROOT / E2E_RULES_DIR / relative))
    in_repo = sorted(p.name for p in (ROOT / E2E_RULES_DIR).glob("*.yml"))
    assert in_repo and sorted(Path(p).name for p in loaded) == in_repo


def test_prometheus_config_addresses_are_compose_services(services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load((ROOT / E2E_PROMETHEUS_CONFIG).read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "spendmeter"]
    assert ["spendmeter:9464"] == [t for sc in job["static_configs"] for t in sc["targets"]]
    assert "--port 9464" in " ".join(services["spendmeter"]["command"])
    assert "--host 0.0.0.0" in " ".join(services["spendmeter"]["command"])
    am_targets = [t for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"]
                  for t in sc["targets"]]
    assert am_targets == ["alertmanager:9093"] and "alertmanager" in services


def test_alertmanager_notifies_the_webhook_service(services: dict[str, dict[str, Any]]) -> None:
    am = services["alertmanager"]
    config_target = _container_config_path(am, "--config.file")
    assert host_path(bind_mounts(am)[config_target]) == ROOT / E2E_ALERTMANAGER_CONFIG
    config = yaml.safe_load((ROOT / E2E_ALERTMANAGER_CONFIG).read_text())
    urls = {w["url"] for r in config["receivers"] for w in r.get("webhook_configs", [])}
    default = next(r for r in config["receivers"] if r["name"] == config["route"]["receiver"])
    assert "http://webhook:9095/alerts" in {w["url"] for w in default["webhook_configs"]}
    webhook = services["webhook"]
    command = webhook["command"]
    assert command[command.index("--port") + 1] == "9095"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    script = PurePosixPath(command[1])
    assert host_path(bind_mounts(webhook)[str(script)]) == ROOT / "src/spendmeter/demo/webhook.py"
    assert all(u.startswith("http://webhook:9095/") for u in urls)


def test_grafana_has_no_default_admin_password(services: dict[str, dict[str, Any]]) -> None:
    env = services["grafana"]["environment"]
    password = env["GF_SECURITY_ADMIN_PASSWORD"]
    # ${VAR:?message}: compose refuses to start while the variable is unset or empty.
    assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", password), password
    assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE", "Viewer") == "Viewer"


def test_grafana_loads_the_provisioned_datasource_and_dashboards(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    mounts = {t: host_path(s) for t, s in bind_mounts(grafana).items()}
    assert mounts["/etc/grafana/provisioning"] == ROOT / "grafana/provisioning"
    providers = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/spendmeter.yml").read_text())
    (provider,) = providers["providers"]
    assert mounts[provider["options"]["path"]] == ROOT / "grafana/dashboards"
    home = PurePosixPath(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert (mounts[str(home.parent)] / home.name).is_file()
    datasources = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    for ds in datasources["datasources"]:
        host, port = re.fullmatch(r"http://([\w-]+):(\d+)", ds["url"]).groups()
        assert host in services, ds["url"]
        assert any(p.endswith(f":{port}") for p in services[host]["ports"]), ds["url"]


def test_otel_collector_is_optional(services: dict[str, dict[str, Any]]) -> None:
    collector = services["otel-collector"]
    assert collector["profiles"] == ["otel"]
    config = yaml.safe_load(host_path(bind_mounts(collector)["/etc/otelcol-contrib/config.yaml"]).read_text())
    assert "otlp" in config["receivers"]
    for pipeline in config["service"]["pipelines"].values():
        assert set(pipeline["receivers"]) <= set(config["receivers"])
        assert set(pipeline["exporters"]) <= set(config["exporters"])
        assert set(pipeline.get("processors", [])) <= set(config["processors"])
    assert all(not s.get("profiles") for n, s in services.items() if n != "otel-collector")
