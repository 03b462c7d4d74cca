"""`opentelemetry-instrument python agent.py` instruments the SDKs through our entry point, no code change."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.otlp_receiver import OtlpReceiver

from spendmeter.testing.scenarios import LOCAL_PROVIDERS_ENV

AGENT = textwrap.dedent(
    """
    import os, urllib.request
    import openai
    client = openai.OpenAI(base_url=os.environ["PROVIDER_URL"] + "/v1", api_key="sk-test")
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                   extra_headers={"x-fake-usage": "input=176,cached=1024,output=100"})
    port = os.environ["SPENDMETER_PROMETHEUS_PORT"]
    print(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode())
    """
)


def test_opentelemetry_instrument_zero_code(provider_server, tmp_path):
    import socket

    launcher = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    if launcher is None:
        pytest.fail("opentelemetry-instrument is not installed (it comes with opentelemetry-instrumentation)")
    if not any(
        ep.name == "spendmeter" for ep in __import__("importlib.metadata").metadata.entry_points(
            group="opentelemetry_instrumentor")
    ):
        pytest.fail("the spendmeter opentelemetry_instrumentor entry point is not installed: pip install -e .")
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with OtlpReceiver() as receiver:
        env = {
            **os.environ,
            "PROVIDER_URL": provider_server.url,
            "SPENDMETER_PROMETHEUS_PORT": str(port),
            "SPENDMETER_USAGE_HOSTS": "127.0.0.1",
            "SPENDMETER_PROVIDERS": LOCAL_PROVIDERS_ENV,
            "OTEL_SERVICE_NAME": "zero-code-agent",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "",
        }
        out = subprocess.run([launcher, sys.executable, str(agent)], env=env, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert 'llm_requests_total{agent="unknown",feature="unknown",model="gpt-4o-mini-2024-07-18"' in out.stdout
        spans = receiver.wait_for(lambda r: [s for s in r.spans() if s["name"].startswith("chat ")], timeout=15)
        assert spans, "no GenAI span reached the OTLP receiver"
