"""Failures inside spendmeter never reach the caller: the SDK call returns exactly what it would have."""

from __future__ import annotations

import logging

import openai

from spendmeter.call import Call
from spendmeter.providers import openai as openai_adapter

MSG = [{"role": "user", "content": "hi"}]


class ExplodingSink:
    def on_call(self, call: Call) -> None:
        raise RuntimeError("sink backend down")


def test_a_failing_sink_is_contained_logged_once_and_counted(instrumented, oai, pipeline, caplog):
    seen: list[str] = []
    pipeline.set(sinks=(ExplodingSink(), *pipeline.current.sinks))
    pipeline.set(count_error=lambda kind, n=1: seen.append(kind))
    with caplog.at_level(logging.WARNING, logger="spendmeter"):
        first = oai.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        oai.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert isinstance(first, openai.types.chat.ChatCompletion)
    assert len(instrumented.calls) == 2  # the other sinks still got both calls
    assert seen == ["sink.ExplodingSink", "sink.ExplodingSink"]
    assert sum("sink.ExplodingSink" in r.getMessage() for r in caplog.records) == 1


def test_an_adapter_bug_returns_the_sdk_object_untouched(instrumented, oai, pipeline, monkeypatch):
    def broken(response):
        raise AttributeError("odd payload")

    monkeypatch.setattr(openai_adapter.ChatAdapter, "response", lambda self, r: broken(r))
    seen: list[str] = []
    pipeline.set(count_error=lambda kind, n=1: seen.append(kind))
    result = oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers={"x-fake-usage": "input=5"})
    assert type(result) is openai.types.chat.ChatCompletion and result.usage.prompt_tokens == 5
    assert instrumented.one().usage.source == "missing"  # still one call, honest about what it knows
    assert seen == ["hook.observe"]  # counted when the call was finished (read above: the finisher flushed)


def test_a_failing_recorder_start_makes_the_bare_call(instrumented, oai, pipeline, monkeypatch):
    from spendmeter import attribution

    def broken():
        raise ValueError("corrupt context")

    monkeypatch.setattr(attribution, "current", broken)
    result = oai.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert result.choices[0].message.content
    assert instrumented.calls == []


def test_a_failing_stream_accumulator_leaves_the_stream_intact(instrumented, oai, pipeline, monkeypatch):
    monkeypatch.setattr(openai_adapter.ChatStreamUsage, "observe", lambda self, chunk: 1 / 0)
    plain = list(oai.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True,
                                             stream_options={"include_usage": True}))
    assert plain[-1].usage is not None  # every chunk, the caller's usage chunk included
    assert instrumented.one().usage.source == "missing"
