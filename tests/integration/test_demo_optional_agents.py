"""The demo's optional agents: `research` on Gemini (google-genai) and `triage` through LiteLLM, sent to the
local fake provider and recorded like every other agent: right provider, priced, no unexpected failure."""

from __future__ import annotations

import io
import logging

import pytest
from prometheus_client import CollectorRegistry

from spendmeter.demo.agents import MessageSource, Profile, conversation_requests
from spendmeter.demo.cli import Demo, Options
from spendmeter.testing import CollectingSink

pytest.importorskip("google.genai")
pytest.importorskip("litellm")


def test_optional_agents_are_in_the_workload_only_when_enabled():
    source = MessageSource(20, 7)
    messages = [source.next() for _ in range(200)]
    plain = {r.agent for m in messages for r in conversation_requests(m, Profile())}
    with_litellm = {r.agent for m in messages
                    for r in conversation_requests(m, Profile(providers=Profile().providers | {"litellm"}))}
    assert "research" in plain and "triage" not in plain
    assert with_litellm - plain == {"triage"}


def test_demo_with_gemini_and_litellm_agents(caplog: pytest.LogCaptureFixture) -> None:
    demo = Demo(Options(duration=3, rate=20, port=0, users=8, seed=3, litellm=True), out=io.StringIO(),
                registry=CollectorRegistry())
    sink = CollectingSink()
    demo.start()
    try:
        import spendmeter

        spendmeter.add_sink(sink)
        with caplog.at_level(logging.WARNING, logger="spendmeter"):
            demo.run()
    finally:
        demo.close()
    by_agent: dict[str, set[str]] = {}
    for call in sink.calls:
        by_agent.setdefault(call.attribution.agent or "", set()).add(call.provider)
    assert by_agent.get("research") == {"gcp.gemini"}
    assert by_agent.get("triage", set()) <= {"anthropic", "openai"} and by_agent.get("triage")
    optional = [c for c in sink.calls if c.attribution.agent in ("research", "triage") and c.status == "ok"]
    assert optional and all(c.priced and c.usage.source == "reported" for c in optional)
    assert "failed unexpectedly" not in caplog.text
