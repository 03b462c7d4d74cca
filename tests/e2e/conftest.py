"""Fixtures for the e2e tests: real servers on free 127.0.0.1 ports, stopped at the end of the session.

Binaries come from PATH (Debian: `prometheus`, `promtool`, `prometheus-alertmanager`, `amtool`) and
/usr/lib/postgresql/*/bin. A missing one fails the test under CI=true and skips it otherwise;
`.ci/install-servers.sh` installs them.

The alerting stack is session-scoped and shared: one webhook receiver, one stub exporter scraped as job
"spendmeter", one Alertmanager, one Prometheus. Tests tell their alerts apart by labels (budget, user,
...), call `webhook.clear()` if they need a clean slate, and point the exporter where they need it:
`stub_exporter.set_text(...)` for hand-written metrics, `stub_exporter.set_upstream(url)` to relay a
real spendmeter /metrics endpoint.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import servers

E2E_DIR = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


# ------------------------------------------------------------------------------------------ binaries


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return servers.need_binary("prometheus")


@pytest.fixture(scope="session")
def promtool_bin() -> str:
    return servers.need_binary("promtool")


@pytest.fixture(scope="session")
def alertmanager_bin() -> str:
    return servers.need_binary("prometheus-alertmanager", "alertmanager")


@pytest.fixture(scope="session")
def amtool_bin() -> str:
    return servers.need_binary("amtool")


@pytest.fixture(scope="session")
def postgres_bin() -> str:
    return servers.need_binary("postgres", globs=(servers.POSTGRES_BIN_GLOB,))


# ------------------------------------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def webhook() -> Iterator[servers.WebhookReceiver]:
    receiver = servers.WebhookReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def stub_exporter() -> Iterator[servers.StubExporter]:
    exporter = servers.StubExporter()
    yield exporter
    exporter.stop()


@pytest.fixture(scope="session")
def alertmanager(alertmanager_bin: str, webhook: servers.WebhookReceiver,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Alertmanager]:
    am = servers.start_alertmanager(alertmanager_bin, tmp_path_factory.mktemp("alertmanager"),
                                    webhook.address)
    yield am
    am.stop()


@pytest.fixture(scope="session")
def prometheus(prometheus_bin: str, alertmanager: servers.Alertmanager,
               stub_exporter: servers.StubExporter,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Prometheus]:
    prom = servers.start_prometheus(
        prometheus_bin,
        tmp_path_factory.mktemp("prometheus"),
        {"spendmeter": stub_exporter.address, "alertmanager": alertmanager.url.removeprefix("http://")},
    )
    yield prom
    prom.stop()


@pytest.fixture(scope="session")
def postgres(postgres_bin: str) -> Iterator[servers.Postgres]:
    pg = servers.start_postgres(postgres_bin)
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def postgres_dsn(postgres: servers.Postgres) -> str:
    """`postgresql://postgres@127.0.0.1:PORT/spendmeter`, an empty database with trust auth."""
    return postgres.dsn
