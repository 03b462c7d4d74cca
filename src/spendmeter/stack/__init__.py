"""The monitoring stack for pip users: Prometheus (config, recording and alert rules, their promtool tests),
Alertmanager, Grafana (dashboards, provisioning) and a docker-compose.yml, written into a directory.

The files are the repository's own `prometheus/` and `grafana/` directories. A wheel carries them as package
data under `spendmeter/stack/data/`, copied there at build time by setup.py (they are not duplicated in git);
a source checkout or an editable install reads them from the repository root.

    spendmeter stack write ./monitoring --target host.docker.internal:9464
    cd monitoring && GRAFANA_ADMIN_PASSWORD=choose-one docker compose up
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

# The top-level directories shipped, relative to the repository root (and to the package data root).
SHIPPED_DIRS = ("prometheus", "grafana")
# The scrape target written in prometheus/prometheus.yml for the compose demo; replaced by `--target`.
SHIPPED_TARGET = "spendmeter:9464"
# Inside a container, the host the application runs on (Linux needs the extra_hosts entry we add).
DEFAULT_TARGET = "host.docker.internal:9464"
WEBHOOK = "webhook/webhook.py"
COMPOSE = "docker-compose.yml"
_TARGET = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")

COMPOSE_HEADER = """\
# Written by `spendmeter stack write` from spendmeter's own docker-compose.yml: Prometheus scrapes your
# application ({target}), alerts go through Alertmanager to a webhook that logs them, and Grafana shows the
# spendmeter dashboards. The demo service of the repository's file is left out: your application is the
# target. Ports are published on 127.0.0.1 only.
#
#   GRAFANA_ADMIN_PASSWORD=choose-one docker compose up
#   open http://localhost:3000   (dashboards folder "spendmeter")
#
"""


@dataclass(frozen=True)
class StackFile:
    """One file of the stack: its path relative to the stack directory and its bytes."""

    path: str
    data: bytes


def data_root() -> Traversable:
    """Where the shipped files are: the wheel's package data, else the repository root of a checkout."""
    packaged = resources.files("spendmeter.stack").joinpath("data")
    if packaged.is_dir():
        return packaged
    repo = Path(__file__).resolve().parents[3]
    if all((repo / name).is_dir() for name in SHIPPED_DIRS):
        return repo
    raise FileNotFoundError(
        "spendmeter's stack files are missing: this installation has neither spendmeter/stack/data (a wheel) "
        f"nor the repository's prometheus/ and grafana/ directories under {repo}; reinstall spendmeter"
    )


def _walk(node: Traversable, prefix: str) -> Iterator[tuple[str, Traversable]]:
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        path = f"{prefix}/{child.name}"
        if child.is_dir():
            yield from _walk(child, path)
        elif not child.name.startswith("."):
            yield path, child


def shipped_files() -> dict[str, bytes]:
    """Every shipped file (`prometheus/...`, `grafana/...`, `docker-compose.yml`) -> its bytes, unmodified."""
    root = data_root()
    out = {path: node.read_bytes() for name in SHIPPED_DIRS for path, node in _walk(root.joinpath(name), name)}
    out[COMPOSE] = root.joinpath(COMPOSE).read_bytes()
    return out


def check_target(target: str) -> str:
    if not _TARGET.fullmatch(target):
        raise ValueError(f"--target must be host:port (e.g. {DEFAULT_TARGET}), got {target!r}")
    return target


def render_prometheus_config(text: str, target: str) -> str:
    """The shipped prometheus.yml with the spendmeter job scraping `target` instead of the compose demo."""
    if SHIPPED_TARGET not in text:
        raise ValueError(f"prometheus/prometheus.yml no longer scrapes {SHIPPED_TARGET}: update spendmeter.stack")
    return text.replace(SHIPPED_TARGET, check_target(target))


def render_compose(text: str, target: str) -> str:
    """The repository's compose file for an application that runs elsewhere: without the demo service (and
    the optional OTel collector, whose config lives in docs/), the webhook read from the stack directory, and
    Prometheus able to reach the host as host.docker.internal."""
    compose = yaml.safe_load(text)
    services = compose["services"]
    services.pop("spendmeter", None)
    services.pop("otel-collector", None)
    services["webhook"]["volumes"] = [f"./{WEBHOOK}:/app/webhook.py:ro"]
    services["prometheus"]["extra_hosts"] = ["host.docker.internal:host-gateway"]
    compose["volumes"] = {"prometheus-data": None}
    body = yaml.safe_dump(compose, sort_keys=False, default_flow_style=False, width=120)
    return COMPOSE_HEADER.format(target=target) + body.replace(": null\n", ":\n")


def stack_files(target: str = DEFAULT_TARGET) -> list[StackFile]:
    """The files `spendmeter stack write` writes, in order: everything shipped, two of them rendered."""
    check_target(target)
    shipped = shipped_files()
    out = []
    for path, data in shipped.items():
        if path == "prometheus/prometheus.yml":
            data = render_prometheus_config(data.decode(), target).encode()
        elif path == COMPOSE:
            data = render_compose(data.decode(), target).encode()
        out.append(StackFile(path, data))
    webhook = resources.files("spendmeter.demo").joinpath("webhook.py").read_bytes()
    out.append(StackFile(WEBHOOK, webhook))
    return out


def write(directory: Path, target: str = DEFAULT_TARGET, *, overwrite: bool = False) -> list[Path]:
    """Write the stack into `directory`. Refuses to replace files that differ unless `overwrite`."""
    files = stack_files(target)
    clashes = [f.path for f in files if (directory / f.path).exists()
               and (directory / f.path).read_bytes() != f.data]
    if clashes and not overwrite:
        raise FileExistsError(
            f"{directory} already holds different versions of {', '.join(clashes[:5])}"
            + (" ..." if len(clashes) > 5 else "") + ": pass --force to replace them"
        )
    written = []
    for f in files:
        path = directory / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.data)
        written.append(path)
    return written
