"""Budgets through init(): real SDK calls spend, an exhausted `action: block` budget raises BudgetExceeded
before any request is sent, the call is counted as blocked, and a new day resets the spend."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

import spendmeter
from spendmeter.testing.scenarios import LOCAL_PROVIDERS

BUDGETS = """
timezone: UTC
budgets:
  - name: user-daily
    scope: user
    period: day
    limit_usd: 0.001
    action: block
    warn_at: [0.5, 0.8]
  - name: global-monthly
    scope: global
    period: month
    limit_usd: 5000
"""
# one call: 2000 x 0.15 + 1000 x 0.60 per 1M = $0.0009
HEADERS = {"x-fake-usage": "input=2000,output=1000"}
MSG = [{"role": "user", "content": "hi"}]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 23, 59, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def budgeted(pipeline, provider_server, tmp_path):
    path = tmp_path / "budgets.yaml"
    path.write_text(BUDGETS)
    clock = Clock()
    rt = spendmeter.init(
        budgets=path, registry=CollectorRegistry(), serve_metrics=False, usage_hosts=("127.0.0.1",),
            providers=LOCAL_PROVIDERS, budget_clock=clock
    )
    provider_server.clear()
    yield rt, clock
    spendmeter.shutdown()


def test_user_over_daily_limit_is_blocked_before_the_request(budgeted, oai, provider_server):
    rt, _clock = budgeted
    with spendmeter.attribute(user="heavy"):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=HEADERS)  # $0.0009
        oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=HEADERS)  # $0.0018 > limit
        sent = len(provider_server.requests)
        with pytest.raises(spendmeter.BudgetExceeded) as info:
            oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=HEADERS)
    assert len(provider_server.requests) == sent, "a blocked call must send no request"
    exc = info.value
    assert (exc.budget, exc.scope, exc.key) == ("user-daily", "user", "heavy")
    assert exc.spent == Decimal("0.0018") and exc.limit == Decimal("0.001")
    assert exc.period_end == datetime(2026, 11, 26, tzinfo=UTC)
    reg = rt.registry
    labels = {"provider": "openai", "model": "gpt-4o-mini", "user": "heavy", "feature": "unknown", "agent": "unknown"}
    assert reg.get_sample_value("llm_requests_total", {**labels, "status": "blocked", "usage": "missing"}) == 1
    # another user is not affected
    with spendmeter.attribute(user="light"):
        oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=HEADERS)
    rt.budgets.refresh_gauges()
    gauge = {"budget": "user-daily", "scope": "user", "key": "heavy", "period": "day"}
    assert reg.get_sample_value("llm_budget_utilization_ratio", gauge) == pytest.approx(1.8)
    assert reg.get_sample_value("llm_budget_users_over_limit", {"budget": "user-daily"}) == 1


def test_a_new_day_resets_the_user_budget(budgeted, oai):
    rt, clock = budgeted
    with spendmeter.attribute(user="heavy"):
        for _ in range(2):
            oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=HEADERS)
        with pytest.raises(spendmeter.BudgetExceeded):
            oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=HEADERS)
        clock.now += timedelta(minutes=1)  # 00:00 the next day
        oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=HEADERS)
    statuses = {(s.name, s.key): s for s in rt.budgets.status()}
    assert statuses[("user-daily", "heavy")].spent == Decimal("0.0009")
    assert statuses[("global-monthly", "all")].spent == Decimal("0.0027")


async def test_async_and_stream_manager_calls_are_blocked_too(budgeted, aoai, ant, provider_server):
    with spendmeter.attribute(user="heavy"):
        for _ in range(2):
            await aoai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=HEADERS)
        sent = len(provider_server.requests)
        with pytest.raises(spendmeter.BudgetExceeded):
            await aoai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=HEADERS)
        manager = ant.messages.stream(model="claude-3-haiku-20240307", max_tokens=10, messages=MSG)
        with pytest.raises(spendmeter.BudgetExceeded):
            with manager:
                pass
    assert len(provider_server.requests) == sent
