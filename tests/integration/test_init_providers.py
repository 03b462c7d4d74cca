"""init() reuses the TracerProvider / MeterProvider the application already set, and never replaces them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, json
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()  # shutdown() below writes every span out
    app_tp = TracerProvider(); app_tp.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(app_tp)
    reader = InMemoryMetricReader()
    app_mp = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(app_mp)

    import openai, spendmeter
    from spendmeter.testing.scenarios import LOCAL_PROVIDERS
    spendmeter.init(serve_metrics=False, otlp_endpoint="http://127.0.0.1:9/unused", usage_hosts=("127.0.0.1",),
                    providers=LOCAL_PROVIDERS)
    client = openai.OpenAI(base_url=os.environ["PROVIDER_URL"] + "/v1", api_key="sk")
    with spendmeter.attribute(user="alice"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                       extra_headers={"x-fake-usage": "input=176,cached=1024,output=100"})
    spendmeter.shutdown()
    names = sorted(m.name for rm in reader.get_metrics_data().resource_metrics
                   for sm in rm.scope_metrics for m in sm.metrics)
    ours = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    print(json.dumps({
        "same_tp": trace.get_tracer_provider() is app_tp,
        "same_mp": metrics.get_meter_provider() is app_mp,
        "spans": len(ours),
        "user": ours[0].attributes.get("user.id") if ours else None,
        "input_tokens": ours[0].attributes.get("gen_ai.usage.input_tokens") if ours else None,
        "metrics": names,
    }))
    """
)


def test_init_reuses_the_applications_providers(provider_server):
    import json

    env = {**os.environ, "PROVIDER_URL": provider_server.url}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["same_tp"] and result["same_mp"]
    assert result["spans"] == 1 and result["user"] == "alice"
    assert result["input_tokens"] == 1200  # cached tokens included, as the GenAI conventions define it
    assert {"llm_cost_usd", "gen_ai.client.token.usage", "gen_ai.client.operation.duration"} <= set(result["metrics"])
