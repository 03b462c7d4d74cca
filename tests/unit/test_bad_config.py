"""Every bad configuration value is a ConfigError that names the setting and the fix, and a failed init()
leaves nothing running and changes no wiring."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry

import spendmeter
from spendmeter.budgets import load_budgets
from spendmeter.errors import ConfigError
from spendmeter.runtime import pipeline as pl
from spendmeter.runtime.settings import resolve

BAD_ENVIRONMENT = [
    ({"SPENDMETER_PROMETHEUS_PORT": "70000"}, "SPENDMETER_PROMETHEUS_PORT"),
    ({"SPENDMETER_PROMETHEUS_PORT": "http"}, "SPENDMETER_PROMETHEUS_PORT"),
    ({"SPENDMETER_LABEL_MAX_LENGTH": "abc"}, "SPENDMETER_LABEL_MAX_LENGTH"),
    ({"SPENDMETER_LABEL_MAX_LENGTH": "-5"}, "SPENDMETER_LABEL_MAX_LENGTH"),
    ({"SPENDMETER_LABEL_MAX_LENGTH": "3"}, "SPENDMETER_LABEL_MAX_LENGTH"),
    ({"SPENDMETER_LABEL_CAPS": "usr=10"}, "SPENDMETER_LABEL_CAPS"),
    ({"SPENDMETER_LABEL_CAPS": "user=0"}, "SPENDMETER_LABEL_CAPS"),
    ({"SPENDMETER_LABEL_CAPS": "user=many"}, "SPENDMETER_LABEL_CAPS"),
    ({"SPENDMETER_OTLP_ENDPOINT": "collector:4318"}, "otlp_endpoint"),
    ({"SPENDMETER_CAPTURE_CONTENT": "maybe"}, "SPENDMETER_CAPTURE_CONTENT"),
    ({"SPENDMETER_METRICS_AUTH": "justauser"}, "SPENDMETER_METRICS_AUTH"),
    ({"SPENDMETER_SHUTDOWN_TIMEOUT": "soon"}, "SPENDMETER_SHUTDOWN_TIMEOUT"),
    ({"SPENDMETER_TLS_CERT": "/nonexistent.pem"}, "SPENDMETER_TLS_CERT"),
]


@pytest.mark.parametrize(
    ("env", "key"), BAD_ENVIRONMENT, ids=[f"{k}={v}" for e, _ in BAD_ENVIRONMENT for k, v in e.items()]
)
def test_a_bad_environment_value_is_a_config_error_naming_it(env, key):
    with pytest.raises(ConfigError) as info:
        resolve(env=env)
    assert info.value.key == key
    assert "expected" in str(info.value) or "cannot" in str(info.value) or "unknown" in str(info.value)


def test_init_argument_caps_are_checked_too():
    with pytest.raises(ConfigError, match="unknown label 'usr'"):
        resolve(label_caps={"usr": 10}, env={})


def test_a_binary_budgets_file_is_a_config_error(tmp_path):
    path = tmp_path / "budgets.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    with pytest.raises(ConfigError, match="not a text file") as info:
        load_budgets(path)
    assert info.value.file == str(path)


@pytest.mark.parametrize("limit", ["1e-12", "0.0000000001", "1e13"])
def test_a_limit_the_spend_counter_cannot_hold_is_refused(tmp_path, limit):
    path = tmp_path / "budgets.yaml"
    path.write_text(f"budgets:\n  - {{name: b, scope: global, period: day, limit_usd: {limit}}}\n")
    with pytest.raises(ConfigError) as info:
        load_budgets(path)
    assert info.value.key == "budgets[0].limit_usd"


def test_a_failed_init_leaves_nothing_running_and_the_wiring_unchanged(pipeline, tmp_path):
    import socket

    before = pl.current()
    threads_before = {t.name for t in threading.enumerate()}
    with socket.socket() as taken:  # the /metrics port is taken: init fails after the ledger was opened
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(ConfigError, match="cannot serve /metrics"):
            spendmeter.init(registry=CollectorRegistry(), prometheus_port=taken.getsockname()[1],
                            ledger=str(tmp_path / "ledger.db"))  # fmt: skip
    assert pl.current() is before
    for t in threading.enumerate():
        if t.name.startswith("spendmeter") and t.name not in threads_before:
            t.join(2)  # the ledger writer stops on close; give it a moment
    leftover = {t.name for t in threading.enumerate() if t.is_alive()} - threads_before
    assert not {name for name in leftover if name.startswith("spendmeter")}, leftover


def test_a_prices_file_for_a_provider_no_call_can_have_is_an_error(pipeline, tmp_path):
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."my-model"]\nprovider = "opnai"\ninput = 1.0\noutput = 2.0\n')
    with pytest.raises(ConfigError, match="did you mean 'openai'") as info:
        spendmeter.init(registry=CollectorRegistry(), serve_metrics=False, prices=prices)
    assert info.value.key == "models.my-model.provider" and info.value.file == str(prices)


def test_a_provider_of_your_own_is_fine_once_an_endpoint_maps_to_it(pipeline, tmp_path):
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."llama-3"]\nprovider = "house-gateway"\ninput = 0\noutput = 0\n')
    spendmeter.init(registry=CollectorRegistry(), serve_metrics=False, prices=prices,
                    providers={"llm.internal": "house-gateway"})  # fmt: skip
    spendmeter.shutdown()


def test_a_budget_matching_a_misspelt_provider_is_an_error(pipeline, tmp_path):
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "budgets:\n  - {name: b, scope: global, period: day, limit_usd: 5, match: {provider: antropic}}\n"
    )
    with pytest.raises(ConfigError, match="did you mean 'anthropic'") as info:
        spendmeter.init(registry=CollectorRegistry(), serve_metrics=False, budgets=budgets)
    assert info.value.key == "budgets[0].match.provider"
