"""The built-in /metrics server next to a host application: bounded threads, read timeouts, a Host allow-list,
basic auth, TLS, quiet client disconnects, and a shutdown that does not wait on unreachable exporters."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import subprocess
import threading
import time

import pytest
from prometheus_client import CollectorRegistry

import spendmeter
from spendmeter.errors import ConfigError
from spendmeter.server import Access, MetricsServer


@pytest.fixture
def server(pipeline):
    srv = MetricsServer("127.0.0.1", 0, registry=CollectorRegistry(), max_threads=4, timeout_s=1.0).start()
    yield srv
    srv.stop()


def _get(srv: MetricsServer, path: str = "/metrics", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_an_unknown_host_header_is_refused_dns_rebinding_cannot_read_budgets(server):
    assert _get(server, "/api/budgets", {"Host": "attacker.example:9464"})[0] == 421
    assert _get(server, "/api/budgets", {"Host": f"127.0.0.1:{server.port}"})[0] == 200
    assert _get(server, "/metrics", {"Host": "localhost"})[0] == 200


def test_idle_connections_hold_at_most_the_pool_and_time_out(server):
    before = threading.active_count()
    idle = [socket.create_connection((server.host, server.port)) for _ in range(30)]
    try:
        time.sleep(0.3)
        assert threading.active_count() - before <= 4  # never a thread per connection
        time.sleep(1.5)  # past the read timeout: every idle connection was closed by the server
        assert _get(server)[0] == 200
        assert threading.active_count() - before <= 1
    finally:
        for s in idle:
            s.close()


def test_a_full_pool_answers_503_at_once(server):
    idle = [socket.create_connection((server.host, server.port)) for _ in range(4)]
    try:
        time.sleep(0.2)
        started = time.monotonic()
        status, _ = _get(server)
        assert status == 503 and time.monotonic() - started < 0.5
    finally:
        for s in idle:
            s.close()


def test_a_client_that_hangs_up_leaves_no_traceback(server, capfd):
    for _ in range(20):
        with socket.create_connection((server.host, server.port)) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    time.sleep(0.3)
    assert _get(server)[0] == 200
    assert "Traceback" not in capfd.readouterr().err


def test_basic_auth(pipeline):
    srv = MetricsServer(
        "127.0.0.1", 0, registry=CollectorRegistry(), access=Access.for_bind("127.0.0.1", (), ("prom", "s3cret"))
    ).start()
    try:
        assert _get(srv)[0] == 401
        wrong = base64.b64encode(b"prom:nope").decode()
        assert _get(srv, headers={"Authorization": f"Basic {wrong}"})[0] == 401
        right = base64.b64encode(b"prom:s3cret").decode()
        assert _get(srv, headers={"Authorization": f"Basic {right}"})[0] == 200
    finally:
        srv.stop()


@pytest.fixture
def certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_through_init(pipeline, certificate):
    cert, key = certificate
    rt = spendmeter.init(prometheus_port=0, registry=CollectorRegistry(), tls_cert=str(cert), tls_key=str(key),
                         metrics_auth="prom:s3cret")  # fmt: skip
    try:
        assert rt.server.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("127.0.0.1", rt.server.port, context=context, timeout=5)
        token = base64.b64encode(b"prom:s3cret").decode()
        conn.request("GET", "/metrics", headers={"Authorization": f"Basic {token}"})
        response = conn.getresponse()
        assert response.status == 200 and b"llm_requests_total" in response.read()
        conn.close()
        with pytest.raises(ssl.SSLError):  # a plain-HTTP client gets nothing
            ssl.create_default_context().wrap_socket(socket.create_connection(("127.0.0.1", rt.server.port)),
                                                     server_hostname="127.0.0.1").do_handshake()  # fmt: skip
    finally:
        spendmeter.shutdown()


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"metrics_auth": "no-colon"}, "SPENDMETER_METRICS_AUTH"),
        ({"tls_cert": "/nonexistent/cert.pem"}, "SPENDMETER_TLS_CERT"),
        ({"shutdown_timeout_s": -1}, "SPENDMETER_SHUTDOWN_TIMEOUT"),
        ({"prometheus_port": 70000}, "prometheus_port"),
    ],
)
def test_bad_server_settings_are_config_errors(pipeline, options, key):
    with pytest.raises(ConfigError) as info:
        spendmeter.init(registry=CollectorRegistry(), **options)
    assert info.value.key == key
    assert "no-colon" not in str(info.value)  # a credential is never echoed


def test_shutdown_is_bounded_when_the_otlp_endpoint_hangs(pipeline, provider_server):
    import openai

    # An OTLP endpoint on loopback that accepts connections and never answers: the exporters would wait out
    # their own timeouts and retries (tens of seconds) if shutdown() waited for them.
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(16)
    endpoint = f"http://127.0.0.1:{hanging.getsockname()[1]}"
    try:
        spendmeter.init(serve_metrics=False, registry=CollectorRegistry(), otlp_endpoint=endpoint,
                        shutdown_timeout_s=1.5, usage_hosts=("127.0.0.1",))  # fmt: skip
        client = openai.OpenAI(base_url=provider_server.openai_base_url, api_key="sk", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        started = time.monotonic()
        spendmeter.shutdown()
        assert time.monotonic() - started < 3.0
    finally:
        hanging.close()
