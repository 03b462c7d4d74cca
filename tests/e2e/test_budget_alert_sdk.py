"""The whole budget path with real parts: real SDK calls through spendmeter → /metrics → the real Prometheus
(shipped rules) → the real Alertmanager (shipped routes) → a webhook; then the next call is blocked and sends
no request."""

from __future__ import annotations

import pytest
import servers
from prometheus_client import CollectorRegistry

import spendmeter
from spendmeter.testing import ProviderServer
from spendmeter.testing.scenarios import LOCAL_PROVIDERS

BUDGETS = """
timezone: UTC
budgets:
  - name: sdk-user-daily
    scope: user
    period: day
    limit_usd: 0.002
    action: block
    warn_at: [0.5]
  - name: sdk-global-monthly
    scope: global
    period: month
    limit_usd: 5000
"""
# $0.0009 a call: 2000 x 0.15 + 1000 x 0.60 per 1M (gpt-4o-mini)
HEADERS = {"x-fake-usage": "input=2000,output=1000"}
MSG = [{"role": "user", "content": "Where is my refund?"}]


@pytest.fixture
def agent(tmp_path, prometheus, alertmanager, webhook, stub_exporter):
    import openai

    path = tmp_path / "budgets.yaml"
    path.write_text(BUDGETS)
    with ProviderServer() as provider:
        rt = spendmeter.init(prometheus_port=servers.free_port(), registry=CollectorRegistry(), budgets=path,
                             usage_hosts=("127.0.0.1",), providers=LOCAL_PROVIDERS, service_name="e2e-agent")
        stub_exporter.set_upstream(rt.server.url + "/metrics")
        client = openai.OpenAI(base_url=provider.openai_base_url, api_key="sk-test", max_retries=0)
        try:
            yield client, provider
        finally:
            stub_exporter.set_upstream(None)
            spendmeter.shutdown()


def test_user_crossing_daily_limit_is_alerted_then_blocked(agent, prometheus, webhook):
    client, provider = agent
    with spendmeter.attribute(user="dora", feature="support", agent="router"):
        for _ in range(3):  # $0.0027 > $0.002
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=HEADERS)

        alert = webhook.wait_for_alert("LLMUserDailyLimitExceeded", timeout=45, user="dora", budget="sdk-user-daily")
        assert alert["labels"]["severity"] == "warning"
        assert "dora" in alert["annotations"]["summary"]

        sent = len(provider.requests)
        with pytest.raises(spendmeter.BudgetExceeded) as info:
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=HEADERS)
        assert len(provider.requests) == sent, "the blocked call reached the provider"
        assert (info.value.budget, info.value.key) == ("sdk-user-daily", "dora")

    # Prometheus saw the real counters too: spend and the blocked call, with the attribution labels.
    cost = prometheus.wait_for_query('sum(llm_cost_usd_total{user="dora",feature="support"})')
    assert float(cost[0]["value"][1]) == pytest.approx(0.0027, rel=1e-9)
    blocked = prometheus.wait_for_query('llm_requests_total{user="dora",status="blocked"} == 1', timeout=20)
    assert blocked[0]["metric"]["agent"] == "router"
