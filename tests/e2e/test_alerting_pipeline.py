"""Budget gauges -> Prometheus (shipped rules) -> Alertmanager (shipped routes and inhibitions) -> webhook.

The exporter is a stdlib stand-in serving hand-written /metrics text in spendmeter's exposition format;
everything after it is the real servers with the shipped files, rendered only for addresses and timings.
"""

from __future__ import annotations

import time

import pytest
import servers

PIPELINE_TIMEOUT_S = 30.0


def budget_metrics(now: float) -> str:
    day_end = int(now // 86400 + 1) * 86400
    month_end = day_end + 20 * 86400
    return f"""\
# HELP llm_budget_limit_usd Budget limit for the current period, in USD.
# TYPE llm_budget_limit_usd gauge
llm_budget_limit_usd{{budget="user-daily",scope="user",key="alice",period="day"}} 5
llm_budget_limit_usd{{budget="user-daily",scope="user",key="bob",period="day"}} 5
llm_budget_limit_usd{{budget="org-monthly",scope="global",key="all",period="month"}} 1000
# HELP llm_budget_spent_usd Spend counted against the budget in the current period, in USD.
# TYPE llm_budget_spent_usd gauge
llm_budget_spent_usd{{budget="user-daily",scope="user",key="alice",period="day"}} 6
llm_budget_spent_usd{{budget="user-daily",scope="user",key="bob",period="day"}} 4.5
llm_budget_spent_usd{{budget="org-monthly",scope="global",key="all",period="month"}} 1050
# HELP llm_budget_utilization_ratio Spent divided by limit.
# TYPE llm_budget_utilization_ratio gauge
llm_budget_utilization_ratio{{budget="user-daily",scope="user",key="alice",period="day"}} 1.2
llm_budget_utilization_ratio{{budget="user-daily",scope="user",key="bob",period="day"}} 0.9
llm_budget_utilization_ratio{{budget="org-monthly",scope="global",key="all",period="month"}} 1.05
# HELP llm_budget_warn_ratio Declared warn levels of each budget.
# TYPE llm_budget_warn_ratio gauge
llm_budget_warn_ratio{{budget="user-daily",level="0.8"}} 0.8
llm_budget_warn_ratio{{budget="org-monthly",level="0.5"}} 0.5
llm_budget_warn_ratio{{budget="org-monthly",level="0.8"}} 0.8
# HELP llm_budget_period_end_timestamp_seconds When the current period ends (unix time).
# TYPE llm_budget_period_end_timestamp_seconds gauge
llm_budget_period_end_timestamp_seconds{{budget="user-daily",period="day"}} {day_end}
llm_budget_period_end_timestamp_seconds{{budget="org-monthly",period="month"}} {month_end}
# HELP llm_budget_users_over_limit Users whose budget is spent.
# TYPE llm_budget_users_over_limit gauge
llm_budget_users_over_limit{{budget="user-daily"}} 1
# HELP llm_cost_usd_total Cost of LLM calls in USD.
# TYPE llm_cost_usd_total counter
llm_cost_usd_total{{provider="openai",model="gpt-4.1",user="alice",feature="support",agent="unknown"}} 6
llm_cost_usd_total{{provider="anthropic",model="claude-sonnet-4-5",user="bob",feature="search",agent="x"}} 4.5
"""


@pytest.fixture(scope="module")
def pipeline(prometheus: servers.Prometheus, alertmanager: servers.Alertmanager,
             webhook: servers.WebhookReceiver, stub_exporter: servers.StubExporter) -> servers.Prometheus:
    stub_exporter.set_text(budget_metrics(time.time()))
    webhook.clear()
    return prometheus


def test_user_over_daily_budget_reaches_the_webhook(pipeline: servers.Prometheus,
                                                     webhook: servers.WebhookReceiver) -> None:
    started = time.monotonic()
    alert = webhook.wait_for_alert("LLMUserDailyLimitExceeded", timeout=PIPELINE_TIMEOUT_S,
                                   user="alice", budget="user-daily")
    elapsed = time.monotonic() - started

    assert alert["labels"]["severity"] == "warning"
    assert alert["labels"]["key"] == "alice"
    assert "instance" not in alert["labels"], "budget alerts must not fan out per scrape target"
    assert alert["receiver"] == "default"
    assert alert["annotations"]["summary"] == "User alice has spent 120% of their daily budget user-daily."
    assert alert["annotations"]["runbook"] == "docs/alerting.md#llmuserdailylimitexceeded"
    assert elapsed < PIPELINE_TIMEOUT_S
    # bob is under his limit: no daily-limit alert for him, ever.
    daily = [a["labels"].get("user") for a in webhook.alerts()
             if a["labels"]["alertname"] == "LLMUserDailyLimitExceeded"]
    assert "bob" not in daily


def test_exhausted_budget_routes_to_critical_and_inhibits_its_warning(
    pipeline: servers.Prometheus, alertmanager: servers.Alertmanager, webhook: servers.WebhookReceiver
) -> None:
    exhausted = webhook.wait_for_alert("LLMBudgetExhausted", timeout=PIPELINE_TIMEOUT_S,
                                       budget="org-monthly", key="all")
    assert exhausted["receiver"] == "critical"
    assert exhausted["labels"]["severity"] == "critical"

    # bob is above the warn level and below the limit: his warning is delivered.
    bob = webhook.wait_for_alert("LLMBudgetWarning", timeout=PIPELINE_TIMEOUT_S, budget="user-daily",
                                 key="bob")
    assert "warn level 80% crossed" in bob["annotations"]["summary"]

    # Prometheus fires the warnings for org-monthly and alice too; Alertmanager holds them back.
    pipeline.wait_for_alert("LLMBudgetWarning", budget="org-monthly", key="all")
    pipeline.wait_for_alert("LLMBudgetWarning", budget="user-daily", key="alice")

    def suppressed(budget: str, key: str) -> bool:
        found = alertmanager.alerts(alertname="LLMBudgetWarning", budget=budget, key=key)
        return bool(found) and all(a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]
                                   for a in found)

    servers.wait_until(lambda: suppressed("org-monthly", "all"), 10, what="org-monthly warning inhibited")
    servers.wait_until(lambda: suppressed("user-daily", "alice"), 10, what="alice's warning inhibited")
    assert not [a for a in webhook.alerts()
                if a["labels"]["alertname"] == "LLMBudgetWarning" and a["labels"]["key"] in {"all", "alice"}]


def test_recording_rules_see_the_scraped_budgets(pipeline: servers.Prometheus) -> None:
    up = pipeline.wait_for_query('up{job="spendmeter"} == 1')
    assert len(up) == 1
    result = pipeline.wait_for_query('budget_key:llm_budget_utilization_ratio:max{budget="user-daily"}')
    by_key = {r["metric"]["key"]: float(r["value"][1]) for r in result}
    assert by_key == {"alice": 1.2, "bob": 0.9}
    assert all(set(r["metric"]) == {"__name__", "budget", "scope", "key", "period"} for r in result)
    # No spend over time in a static exposition: the forecast sees a zero rate and stays quiet.
    forecast = pipeline.wait_for_query('budget_key:llm_budget_spent_usd:forecast_rate1h{key="bob"}')
    assert float(forecast[0]["value"][1]) == pytest.approx(4.5)
