"""OtelMetricsSink with hand-made Call records, read back through an InMemoryMetricReader."""

from __future__ import annotations

from decimal import Decimal

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from spendmeter.call import Attribution, Call, Cost, Unpriced, Usage
from spendmeter.sinks.otel_metrics import OtelMetricsSink
from spendmeter.telemetry import contract
from spendmeter.telemetry import semconv as sc
from spendmeter.telemetry.labels import LabelPolicy
from spendmeter.testing.records import labelled

WHO = {
    "provider": "anthropic",
    "model": "claude-sonnet-4-5",
    "user": "alice",
    "feature": "support",
    "agent": "router",
}


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def sink(reader: InMemoryMetricReader) -> OtelMetricsSink:
    return OtelMetricsSink(meter_provider=MeterProvider(metric_readers=[reader]))


def _cost(total: str) -> Cost:
    zero = Decimal(0)
    return Cost(zero, zero, zero, zero, Decimal(total), "genai-prices 0.2.3", "anthropic/claude-sonnet-4-5")


def _call(**overrides: object) -> Call:
    fields: dict[str, object] = dict(
        provider="anthropic",
        operation="messages",
        request_model="claude-sonnet-4-5",
        response_model="claude-sonnet-4-5",
        attribution=Attribution(user="alice", feature="support", agent="router"),
        usage=Usage(
            input=100, cache_read=2000, cache_write_5m=300, output=50, reasoning=20, source="reported"
        ),
        cost=_cost("0.002775"),
        duration_s=1.5,
    )
    fields.update(overrides)
    return labelled(Call(**fields))  # type: ignore[arg-type]


def _points(reader: InMemoryMetricReader) -> dict[str, list]:
    """Instrument name -> its data points, from one collection."""
    out: dict[str, list] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


def _one(points: list, **attrs: object):
    matches = [p for p in points if all(p.attributes.get(k) == v for k, v in attrs.items())]
    assert len(matches) == 1, (attrs, [dict(p.attributes) for p in points])
    return matches[0]


def test_counters_mirror_the_prometheus_contract(sink, reader):
    sink.on_call(_call())
    sink.on_call(_call(cost=_cost("0.5"), usage=Usage(input=10, output=5, source="reported")))
    m = _points(reader)

    assert _one(m["llm_cost_usd"], **WHO).value == pytest.approx(0.502775, abs=1e-12)
    assert dict(_one(m["llm_cost_usd"]).attributes) == WHO  # exactly the contract's labels
    assert _one(m["llm_tokens"], type="input").value == 110
    assert _one(m["llm_tokens"], type="cache_read").value == 2000
    assert _one(m["llm_tokens"], type="cache_write").value == 300
    assert _one(m["llm_tokens"], type="output").value == 55
    assert dict(_one(m["llm_tokens"], type="output").attributes) == {**WHO, "type": "output"}
    assert _one(m["llm_reasoning_tokens"]).value == 20
    assert _one(m["llm_requests"], status="ok", usage="reported").value == 2
    duration = _one(m["llm_request_duration_seconds"])
    assert duration.count == 2 and duration.sum == pytest.approx(3.0)
    assert "user" not in duration.attributes  # no per-user histogram series
    assert tuple(duration.explicit_bounds) == contract.DURATION_BUCKETS
    assert "llm_unpriced_requests" not in m


def test_never_set_attribution_reads_unknown(sink, reader):
    sink.on_call(_call(attribution=Attribution(), response_model=None, request_model=None))
    m = _points(reader)
    assert dict(_one(m["llm_requests"]).attributes) == {
        "provider": "anthropic",
        "model": "unknown",
        "user": "unknown",
        "feature": "unknown",
        "agent": "unknown",
        "status": "ok",
        "usage": "reported",
    }


def test_unpriced_call_counts_and_adds_no_cost(sink, reader):
    sink.on_call(_call(response_model="mystery-1", cost=Unpriced("no price for mystery-1")))
    m = _points(reader)
    assert "llm_cost_usd" not in m
    point = _one(m["llm_unpriced_requests"])
    assert point.value == 1
    assert dict(point.attributes) == {"provider": "anthropic", "model": "mystery-1"}


def test_genai_semconv_histograms(sink, reader):
    sink.on_call(_call(server_address="api.anthropic.com", server_port=443))
    m = _points(reader)
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.response.model": "claude-sonnet-4-5",
        "server.address": "api.anthropic.com",
        "server.port": 443,
        "spendmeter.feature": "support",
        "gen_ai.agent.name": "router",
    }
    tokens_in = _one(m["gen_ai.client.token.usage"], **{"gen_ai.token.type": "input"})
    tokens_out = _one(m["gen_ai.client.token.usage"], **{"gen_ai.token.type": "output"})
    assert dict(tokens_in.attributes) == {**base, "gen_ai.token.type": "input"}
    assert tokens_in.sum == 2400  # input + cache_read + cache_write, as semconv counts input
    assert tokens_out.sum == 50 and tokens_out.count == 1
    assert tuple(tokens_in.explicit_bounds) == sc.TOKEN_USAGE_BUCKETS
    # 2400 lands in (1024, 4096]: bucket index 6
    assert tokens_in.bucket_counts[6] == 1 and sum(tokens_in.bucket_counts) == 1
    duration = _one(m["gen_ai.client.operation.duration"])
    assert dict(duration.attributes) == base
    assert duration.sum == pytest.approx(1.5)
    assert tuple(duration.explicit_bounds) == sc.OPERATION_DURATION_BUCKETS


def test_error_call(sink, reader):
    sink.on_call(
        _call(status="error", error_type="APITimeoutError", usage=Usage(), cost=None, duration_s=30.0)
    )
    m = _points(reader)
    assert _one(m["llm_requests"], status="error", usage="missing").value == 1
    assert "llm_tokens" not in m and "llm_cost_usd" not in m
    duration = _one(m["gen_ai.client.operation.duration"])
    assert duration.attributes["error.type"] == "APITimeoutError"
    assert "gen_ai.client.token.usage" not in m  # unknown usage is not recorded as zero tokens


def test_blocked_call_counts_request_only(sink, reader):
    sink.on_call(
        _call(status="blocked", error_type="BudgetExceeded", usage=Usage(), cost=None, duration_s=0.0)
    )
    m = _points(reader)
    assert _one(m["llm_requests"], status="blocked", usage="missing").value == 1
    assert set(m) == {"llm_requests"}


def test_a_sink_failure_is_contained_by_the_recorder_logged_and_counted(sink, reader, pipeline, caplog):
    from spendmeter import recorder

    errors: list[str] = []
    pipeline.set(sinks=(sink,), count_error=lambda kind, n=1: errors.append(kind))
    call = _call()
    call.usage = None  # type: ignore[assignment]
    recorder.finish(call)
    recorder.drain()
    assert "sink.otel_metrics" in errors
    assert "spendmeter internal error (sink.otel_metrics)" in caplog.text


def test_global_provider_is_not_replaced():
    from opentelemetry import metrics

    before = metrics.get_meter_provider()
    OtelMetricsSink()
    assert metrics.get_meter_provider() is before


def test_instruments_are_the_contract_rows(sink, reader):
    sink.on_call(_call())
    sink.on_call(_call(status="blocked", usage=Usage(source="missing"), cost=None))
    sink.on_call(_call(cost=Unpriced("no price")))
    sink.on_call(_call(tool_uses=(("web_search", 2),)))
    names = set(_points(reader))
    call_metrics = {m.name for m in contract.CALL_METRICS}
    assert call_metrics <= names
    assert names - call_metrics == {sc.GEN_AI_CLIENT_TOKEN_USAGE, sc.GEN_AI_CLIENT_OPERATION_DURATION}
    duration = _points(reader)[contract.DURATION.name][0]
    assert tuple(duration.explicit_bounds) == contract.DURATION_BUCKETS


def test_label_policy_is_applied(reader):
    sink = OtelMetricsSink(meter_provider=MeterProvider(metric_readers=[reader]))
    policy = LabelPolicy({"feature": 1}, hash_key=b"k")
    sink.on_call(labelled(_call(), policy))
    sink.on_call(labelled(_call(attribution=Attribution(user="bob", feature="billing", agent="router")), policy))
    m = _points(reader)
    hashed = {policy.hash_user("alice"), policy.hash_user("bob")}
    costs = {(p.attributes["user"], p.attributes["feature"]) for p in m["llm_cost_usd"]}
    assert costs == {(policy.hash_user("alice"), "support"), (policy.hash_user("bob"), "other")}
    assert not {"alice", "bob"} & {p.attributes["user"] for p in m["llm_cost_usd"]}
    assert hashed == {p.attributes["user"] for p in m["llm_requests"]}
    features = {p.attributes["spendmeter.feature"] for p in m["gen_ai.client.operation.duration"]}
    assert features == {"support", "other"}
