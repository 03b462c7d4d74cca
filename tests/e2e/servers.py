"""Real Prometheus, Alertmanager and PostgreSQL servers for the e2e tests, plus two tiny stdlib stand-ins.

Every server runs on a free 127.0.0.1 port with its own temporary data directory and is stopped by the
caller (the fixtures in conftest.py do that). Nothing here starts a system service.

How the shipped configuration reaches the tests (the one mechanism, see docs/alerting.md):
`prometheus/prometheus.yml` and `prometheus/alertmanager.yml` are written for docker-compose, with
service-name addresses (`spendmeter:9464`, `alertmanager:9093`, `localhost:9090`, `webhook:9095`).
`render_config()` makes a copy in which only those host:port strings are replaced and, if asked, the
timing keys (`scrape_interval`, `evaluation_interval`, `group_wait`, ...) are shortened. The rules
directory is copied beside the rendered prometheus.yml unchanged, so what the tests load is what
compose runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from glob import glob
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "prometheus"

# The addresses written in the shipped files, by role. render_config() refuses a file that lacks one it
# is asked to replace, so a renamed compose service cannot silently leave a test pointing nowhere.
SHIPPED_ADDRESSES: dict[str, str] = {
    "spendmeter": "spendmeter:9464",
    "alertmanager": "alertmanager:9093",
    "prometheus": "localhost:9090",
    "webhook": "webhook:9095",
}

# Timings the tests use: fast enough for an alert to travel the whole pipeline in a few seconds.
FAST_PROMETHEUS_TIMINGS: dict[str, str] = {
    "scrape_interval": "1s",
    "scrape_timeout": "1s",
    "evaluation_interval": "1s",
}
FAST_ALERTMANAGER_TIMINGS: dict[str, str] = {
    "group_wait": "1s",
    "group_interval": "1s",
    "repeat_interval": "1m",
}

READY_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------------------------- render


def render_config(
    text: str, addresses: Mapping[str, str], timings: Mapping[str, str] | None = None
) -> str:
    """Return `text` with shipped host:port strings replaced and timing keys set.

    `addresses` maps a role of SHIPPED_ADDRESSES (or a literal shipped host:port) to the address to use.
    `timings` maps a YAML key (e.g. `scrape_interval`) to a new value for every occurrence of that key.
    Nothing else in the text changes. A shipped address or key that is absent raises ValueError.
    """
    for role, new in addresses.items():
        old = SHIPPED_ADDRESSES.get(role, role)
        if old not in text:
            raise ValueError(f"address {old!r} ({role}) does not occur in the configuration")
        text = text.replace(old, new)
    for key, value in (timings or {}).items():
        text, count = re.subn(rf"(?m)^(\s*{re.escape(key)}:\s*)\S+", rf"\g<1>{value}", text)
        if not count:
            raise ValueError(f"key {key!r} does not occur in the configuration")
    return text


def render_prometheus_dir(
    dest: Path, addresses: Mapping[str, str], timings: Mapping[str, str] | None = None
) -> Path:
    """Write a rendered prometheus.yml into `dest` with the rules beside it; return the config path."""
    dest.mkdir(parents=True, exist_ok=True)
    config = dest / "prometheus.yml"
    config.write_text(render_config((PROMETHEUS_DIR / "prometheus.yml").read_text(), addresses, timings))
    shutil.copytree(PROMETHEUS_DIR / "rules", dest / "rules", dirs_exist_ok=True)
    return config


def render_alertmanager_config(
    dest: Path, addresses: Mapping[str, str], timings: Mapping[str, str] | None = None
) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    config = dest / "alertmanager.yml"
    config.write_text(render_config((PROMETHEUS_DIR / "alertmanager.yml").read_text(), addresses, timings))
    return config


# ------------------------------------------------------------------------------------------- binaries


def find_binary(*names: str, globs: tuple[str, ...] = ()) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    for pattern in globs:
        # Highest version first: /usr/lib/postgresql/16/bin before .../15/bin.
        hits = sorted(glob(pattern), key=lambda p: [int(x) for x in re.findall(r"\d+", p)], reverse=True)
        if hits:
            return hits[0]
    return None


def need_binary(*names: str, globs: tuple[str, ...] = ()) -> str:
    """The binary's path; fails the test under CI=true when it is missing, skips it otherwise."""
    found = find_binary(*names, globs=globs)
    if found:
        return found
    message = f"{' / '.join(names)} not found (run .ci/install-servers.sh)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin/postgres"


# ---------------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return bytes(resp.read())


def http_json(url: str, data: Any = None, timeout: float = 5.0) -> Any:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def wait_until(check: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "") -> Any:
    """Call `check` until it returns something truthy (returned) or `timeout` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # the server may not answer yet
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: {last_error!r}")
        time.sleep(interval)


@dataclass
class ServerProcess:
    """A started server: its process, log file and base URL."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str
    workdir: Path

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_ready(self, path: str = "/-/ready", timeout: float = READY_TIMEOUT_S) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                http_get(self.url + path, timeout=1.0)
                return True
            except (urllib.error.URLError, OSError):
                return False

        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _spawn(name: str, argv: list[str], workdir: Path, url: str, **popen: Any) -> ServerProcess:
    log_path = workdir / f"{name}.log"
    log = open(log_path, "wb")  # the child keeps its own descriptor; ours is closed right away
    try:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **popen)
    finally:
        log.close()
    return ServerProcess(name, proc, log_path, url, workdir)


# ---------------------------------------------------------------------------------------- Prometheus


class Prometheus(ServerProcess):
    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the `result` list of the HTTP API (vector: [{"metric": ..., "value": ...}])."""
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        reply = http_json(url)
        assert reply["status"] == "success", reply
        return list(reply["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Prometheus holds (pending and firing), each with `labels`, `annotations`, `state`."""
        return list(http_json(self.url + "/api/v1/alerts")["data"]["alerts"])

    def targets(self) -> list[dict[str, Any]]:
        return list(http_json(self.url + "/api/v1/targets")["data"]["activeTargets"])

    def reload(self) -> None:
        http_json(self.url + "/-/reload", data={})

    def wait_for_query(self, expr: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        return list(wait_until(lambda: self.query(expr), timeout, what=f"a result for {expr}"))

    def wait_for_alert(self, alertname: str, timeout: float = 20.0, state: str = "firing",
                       **labels: str) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for alert in self.alerts():
                if alert["state"] == state and _labels_match(alert["labels"], alertname, labels):
                    return alert
            return None

        return dict(wait_until(find, timeout, what=f"{state} {alertname} {labels} in Prometheus"))


def start_prometheus(binary: str, workdir: Path, addresses: Mapping[str, str],
                     timings: Mapping[str, str] | None = FAST_PROMETHEUS_TIMINGS,
                     port: int | None = None) -> Prometheus:
    """Start Prometheus on the shipped config rendered with `addresses` (its own address is added)."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = render_prometheus_dir(workdir / "config", {"prometheus": f"127.0.0.1:{port}", **addresses},
                                   timings)
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]
    server = _spawn("prometheus", argv, workdir, f"http://127.0.0.1:{port}")
    prom = Prometheus(server.name, server.proc, server.log_path, server.url, workdir)
    try:
        prom.wait_ready()
    except Exception:
        prom.stop()
        raise
    return prom


# -------------------------------------------------------------------------------------- Alertmanager


class Alertmanager(ServerProcess):
    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """Alerts as Alertmanager sees them (API v2): `labels`, `status.state` (active|suppressed)..."""
        query = urllib.parse.urlencode(
            [("filter", f'{k}="{v}"') for k, v in filters.items()]
            + [("silenced", "true"), ("inhibited", "true"), ("active", "true")]
        )
        return list(http_json(self.url + "/api/v2/alerts?" + query))


def start_alertmanager(binary: str, workdir: Path, webhook_address: str,
                       timings: Mapping[str, str] | None = FAST_ALERTMANAGER_TIMINGS,
                       port: int | None = None) -> Alertmanager:
    """Start Alertmanager on the shipped config with its webhook host:port set to `webhook_address`."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = render_alertmanager_config(workdir, {"webhook": webhook_address}, timings)
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip: a single local instance
        "--log.level=warn",
    ]
    server = _spawn("alertmanager", argv, workdir, f"http://127.0.0.1:{port}")
    am = Alertmanager(server.name, server.proc, server.log_path, server.url, workdir)
    try:
        am.wait_ready()
    except Exception:
        am.stop()
        raise
    return am


# ---------------------------------------------------------------------------------------- PostgreSQL


@dataclass
class Postgres:
    bindir: Path
    datadir: Path
    port: int
    dsn: str
    _run_as: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        subprocess.run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w",
                        "stop"], capture_output=True, timeout=30, check=False, **self._run_as)
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def start_postgres(postgres_binary: str, database: str = "spendmeter", *, durable: bool = False) -> Postgres:
    """initdb into a fresh temp dir and start PostgreSQL on a free port, trust auth on 127.0.0.1.

    PostgreSQL refuses to run as root; as root the server runs as the `postgres` system user (which the
    Debian package creates; `nobody` otherwise), with a directory under /tmp that user owns. `durable` keeps
    PostgreSQL's default durability (fsync, synchronous commit: what a commit costs in production, for
    benchmarks/ledger.py); the tests' clusters turn it off.
    """
    bindir = Path(postgres_binary).resolve().parent  # PATH may hold symlinks to the real bindir
    base = Path(tempfile.mkdtemp(prefix="spendmeter-pg-"))
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = pwd.getpwnam("nobody")
        os.chown(base, user.pw_uid, user.pw_gid)
        run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [],
                  "env": {**os.environ, "HOME": str(base)}}
    datadir = base / "data"
    port = free_port()
    _run([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust", "--no-sync",
          "-E", "UTF8", "--locale=C"], timeout=120, **run_as)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base}"
    if not durable:  # fsync and friends off: a throwaway test cluster, and the machine has 2 cores and a shared disk
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    pg = Postgres(bindir, datadir, port, f"postgresql://postgres@127.0.0.1:{port}/{database}", run_as)
    try:
        _run([str(bindir / "pg_ctl"), "-D", str(datadir), "-o", options, "-l", str(base / "pg.log"),
              "-w", "-t", "60", "start"], timeout=90, **run_as)
        _run([str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
              "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{database}"'], timeout=30)
    except Exception:
        pg.stop()
        raise
    return pg


def _run(argv: list[str], timeout: float, **popen: Any) -> None:
    done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False, **popen)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(argv[:2])} exited with {done.returncode}:\n{output}")


# ------------------------------------------------------------------------------ stdlib stand-ins


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server:
    """A ThreadingHTTPServer on a free 127.0.0.1 port, served from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = int(self.httpd.server_address[1])
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name=type(self).__name__,
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class WebhookReceiver(_Server):
    """Collects the JSON bodies Alertmanager POSTs (webhook payload version 4)."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self._lock = threading.Lock()

        class Handler(_QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                receiver: WebhookReceiver = self.server.owner  # type: ignore[attr-defined]
                with receiver._lock:
                    receiver.payloads.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler)
        self.url = f"http://{self.address}/alerts"

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every payload, each with the payload's `receiver` added."""
        with self._lock:
            return [{**alert, "receiver": p.get("receiver")} for p in self.payloads for alert in p["alerts"]]

    def clear(self) -> None:
        with self._lock:
            self.payloads.clear()

    def wait_for_alert(self, alertname: str, timeout: float = 30.0, status: str = "firing",
                       **labels: str) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for alert in self.alerts():
                if alert["status"] == status and _labels_match(alert["labels"], alertname, labels):
                    return alert
            return None

        return dict(wait_until(find, timeout, what=f"{status} {alertname} {labels} at the webhook"))


class StubExporter(_Server):
    """Serves /metrics: either the text given to set_text(), or whatever `upstream` serves.

    Prometheus scrapes this stand-in as job "spendmeter"; a test that runs the real spendmeter server
    points it there with set_upstream(url) instead of starting another Prometheus.
    """

    def __init__(self, text: str = "") -> None:
        self.text = text
        self.upstream: str | None = None

        class Handler(_QuietHandler):
            def do_GET(self) -> None:
                exporter: StubExporter = self.server.owner  # type: ignore[attr-defined]
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                if exporter.upstream:
                    try:
                        body = http_get(exporter.upstream, timeout=2.0)
                    except OSError:
                        self.send_error(503)
                        return
                else:
                    body = exporter.text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)

    def set_text(self, text: str) -> None:
        self.upstream = None
        self.text = text

    def set_upstream(self, url: str | None) -> None:
        self.upstream = url


def _labels_match(have: Mapping[str, str], alertname: str, want: Mapping[str, str]) -> bool:
    return have.get("alertname") == alertname and all(have.get(k) == v for k, v in want.items())


@contextlib.contextmanager
def stopping(*servers: Any) -> Iterator[None]:
    """Stop every server given, in reverse order, whatever happens in the block."""
    try:
        yield
    finally:
        for server in reversed(servers):
            with contextlib.suppress(Exception):
                server.stop()
