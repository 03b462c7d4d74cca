"""`spendmeter.testing`: the public test double that tests and the demo share.

The fake provider used to live inside the demo, where a change made for the demo silently changed what the
integration tests prove. These tests pin the split: the package exports what users need, the demo has no
provider server of its own, and `CollectingSink.one()` says what went wrong when it fails.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import spendmeter.testing
from spendmeter.call import Attribution, Call
from spendmeter.testing import CollectingSink, ProviderServer

OLD_DEMO_MODULES = ("provider_server", "provider_openai", "provider_anthropic", "provider_scenario")


def _call(user: str) -> Call:
    return Call(provider="openai", operation="chat", request_model="gpt-4o-mini", attribution=Attribution(user=user))


def test_testing_exports_the_server_the_sink_and_the_scenario_names():
    from spendmeter.testing.collect import CollectingSink as Defined
    from spendmeter.testing.server import ProviderServer as Served

    assert spendmeter.testing.ProviderServer is ProviderServer is Served
    assert spendmeter.testing.CollectingSink is CollectingSink is Defined
    assert {"ProviderServer", "CollectingSink", "HEADER_USAGE", "HEADER_SCENARIO", "SCENARIO_ERROR_500"} <= set(
        spendmeter.testing.__all__
    )
    for name in spendmeter.testing.__all__:  # every advertised name resolves
        assert getattr(spendmeter.testing, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'NotExported'"):
        spendmeter.testing.NotExported  # noqa: B018


@pytest.mark.parametrize("module", OLD_DEMO_MODULES)
def test_the_demo_defines_no_provider_server_of_its_own(module):
    assert importlib.util.find_spec(f"spendmeter.demo.{module}") is None


def test_no_demo_module_defines_a_provider_server_class():
    demo = Path(spendmeter.testing.__file__).parent.parent / "demo"
    for path in demo.glob("*.py"):
        classes = {node.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ClassDef)}
        assert "ProviderServer" not in classes, f"{path.name} defines its own ProviderServer"


def test_collecting_sink_one_names_the_count_when_nothing_finished():
    with pytest.raises(AssertionError, match="expected exactly one finished call, got 0"):
        CollectingSink().one()


def test_collecting_sink_one_names_the_count_and_the_calls_when_two_finished():
    sink = CollectingSink()
    sink.on_call(_call("alice"))
    sink.on_call(_call("bob"))
    with pytest.raises(AssertionError, match="got 2") as failure:
        sink.one()
    assert "alice" in str(failure.value) and "bob" in str(failure.value)


def test_collecting_sink_one_returns_the_only_call():
    sink, call = CollectingSink(), _call("alice")
    sink.on_call(call)
    assert sink.one() is call and sink.calls == [call]


def test_collecting_sink_keeps_every_call_finished_on_other_threads():
    sink, barrier = CollectingSink(), threading.Barrier(32)

    def finish_many() -> None:
        barrier.wait()
        for _ in range(50):
            sink.on_call(_call("alice"))

    threads = [threading.Thread(target=finish_many) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sink.calls) == 32 * 50


def test_server_module_runs_with_python_m_without_a_runpy_warning():
    # The package resolves its exports lazily so that runpy finds `server` not yet imported; an eager import
    # in __init__ would make `python -m spendmeter.testing.server` print a RuntimeWarning.
    src = str(Path(spendmeter.testing.__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "spendmeter.testing.server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    watchdog = threading.Timer(20, proc.kill)  # a server that never prints must not hang the suite
    watchdog.start()
    try:
        first = proc.stdout.readline() if proc.stdout else ""
        assert first.startswith("OpenAI base URL:    http://127.0.0.1:"), (first, proc.stderr.read())
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        watchdog.cancel()
    assert "RuntimeWarning" not in err


def test_the_package_example_prices_calls_to_the_local_server(pipeline):
    import anthropic
    import openai

    import spendmeter
    from spendmeter.testing import HEADER_USAGE, CollectingSink, ProviderServer

    sink = CollectingSink()
    spendmeter.add_sink(sink)
    try:
        with ProviderServer() as srv:
            spendmeter.init(serve_metrics=False, providers=srv.providers)
            openai.OpenAI(base_url=srv.openai_base_url, api_key="test").chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                extra_headers={HEADER_USAGE: "input=100,output=20"},
            )  # fmt: skip
            anthropic.Anthropic(base_url=srv.anthropic_base_url, api_key="test").messages.create(
                model="claude-3-haiku-20240307", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        spendmeter.shutdown()
        spendmeter.remove_sink(sink)
    chat, message = sink.calls
    assert (chat.provider, chat.usage.input, chat.usage.output, chat.priced) == ("openai", 100, 20, True)
    assert (message.provider, message.priced) == ("anthropic", True)
