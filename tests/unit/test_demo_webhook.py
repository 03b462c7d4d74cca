"""The demo's Alertmanager webhook receiver: one line per alert, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from spendmeter.demo.webhook import format_alert, format_payload, serve

# Shaped like Alertmanager's webhook payload (version 4): one group, two alerts.
NOTIFICATION = {
    "version": "4",
    "groupKey": '{}:{alertname="LLMBudgetWarning", budget="daily-global"}',
    "status": "firing",
    "receiver": "default",
    "groupLabels": {"alertname": "LLMBudgetWarning", "budget": "daily-global"},
    "commonLabels": {"alertname": "LLMBudgetWarning", "budget": "daily-global", "severity": "warning"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "LLMBudgetWarning", "budget": "daily-global", "scope": "global",
                       "key": "all", "period": "day", "severity": "warning", "job": "spendmeter"},
            "annotations": {"summary": "Budget daily-global at 82% of its limit"},
            "startsAt": "2026-11-25T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": "a1b2c3",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "LLMBudgetWarning", "budget": "daily-global", "scope": "user",
                       "key": "u-7", "user": "u-7", "severity": "warning"},
            "annotations": {"description": "back under the warn level"},
            "startsAt": "2026-11-25T09:00:00Z",
            "endsAt": "2026-11-25T09:30:00Z",
            "fingerprint": "d4e5f6",
        },
    ],
}


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[str]]]:
    lines: list[str] = []
    server = serve("127.0.0.1", 0, lines.append)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", lines
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _post(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_format_alert_names_the_alert_its_budget_and_says_why() -> None:
    assert format_alert(NOTIFICATION["alerts"][0]) == (
        "[firing] LLMBudgetWarning budget=daily-global scope=global key=all period=day severity=warning: "
        "Budget daily-global at 82% of its limit"
    )


def test_format_alert_falls_back_to_the_group_status_and_description() -> None:
    alert = {"labels": {"alertname": "SpendmeterTargetDown"}, "annotations": {"description": "no scrape"}}
    assert format_alert(alert, "firing") == "[firing] SpendmeterTargetDown: no scrape"


def test_format_payload_rejects_what_is_not_a_notification() -> None:
    with pytest.raises(ValueError, match="alerts"):
        format_payload({"hello": "world"})


def test_posted_notification_prints_one_line_per_alert(receiver: tuple[str, list[str]]) -> None:
    url, lines = receiver
    status, _ = _post(url + "/alerts", json.dumps(NOTIFICATION).encode())
    assert status == 200
    assert len(lines) == 2
    assert lines[0].startswith("[firing] LLMBudgetWarning budget=daily-global")
    assert lines[1] == (
        "[resolved] LLMBudgetWarning budget=daily-global scope=user key=u-7 severity=warning user=u-7: "
        "back under the warn level"
    )


def test_bad_requests_are_refused_and_print_nothing(receiver: tuple[str, list[str]]) -> None:
    url, lines = receiver
    assert _post(url + "/alerts", b"{not json")[0] == 400
    assert _post(url + "/alerts", b"[1, 2]")[0] == 400
    assert _post(url + "/elsewhere", json.dumps(NOTIFICATION).encode())[0] == 404
    assert lines == []
    with urllib.request.urlopen(url + "/", timeout=5) as response:  # the health check
        assert response.status == 200
