"""The background finisher: calls are finished off the caller's thread, in order, exactly once; every reader
sees what ended before it asked; nothing is dropped (back-pressure, no thread, fork, exit)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from spendmeter import recorder
from spendmeter.call import Attribution, Call, Usage
from spendmeter.errors import ConfigError
from spendmeter.providers.base import ResponseFacts
from spendmeter.runtime import finisher
from spendmeter.runtime.finisher import Finisher
from spendmeter.runtime.settings import resolve


class ThreadOf:
    def __init__(self) -> None:
        self.threads: list[int] = []
        self.calls: list[Call] = []

    def on_call(self, call: Call) -> None:
        self.threads.append(threading.get_ident())
        self.calls.append(call)


def _call(user: str = "u") -> Call:
    return Call(provider="openai", operation="chat", request_model="gpt-4o-mini", attribution=Attribution(user=user))


def _facts() -> ResponseFacts:
    return ResponseFacts(usage=Usage(input=10, output=2, source="reported"))


def test_calls_are_finished_on_the_finisher_thread_in_order(pipeline):
    sink = ThreadOf()
    pipeline.set(sinks=(sink,))
    calls = [_call(f"u{i}") for i in range(50)]
    for call in calls:
        recorder.finish(call, _facts())
    deadline = time.monotonic() + 5
    while len(sink.calls) < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.calls == calls  # in order, each once, without anyone flushing
    assert threading.get_ident() not in sink.threads
    assert {t.name for t in threading.enumerate()} >= {"spendmeter-finisher"}


def test_a_reader_flush_finishes_what_is_queued_on_its_own_thread(pipeline):
    sink = ThreadOf()
    pipeline.set(sinks=(sink,))
    f = Finisher(recorder._process, delay_s=60)  # a thread that would wait a minute
    f.submit((call := _call(), _facts(), "completed"))
    assert sink.calls == []
    f.flush()
    assert sink.calls == [call] and call.labels is not None and call.usage.input == 10


def test_a_call_is_finished_once_however_often_finish_is_called(collected):
    call = _call()
    for _ in range(3):
        recorder.finish(call, _facts())
    recorder.fail(call, RuntimeError("late"))
    assert collected.one() is call and call.status == "ok"


def test_a_long_queue_is_finished_by_the_caller_instead_of_growing(pipeline):
    sink = ThreadOf()
    pipeline.set(sinks=(sink,))
    f = Finisher(recorder._process, delay_s=60, max_pending=5)
    for _ in range(6):
        f.submit((_call(), _facts(), "completed"))
    assert f.pending() == 0 and len(sink.calls) == 6  # back-pressure: none dropped, none left queued
    assert set(sink.threads) == {threading.get_ident()}


def test_inline_mode_finishes_on_the_callers_thread(pipeline):
    sink = ThreadOf()
    pipeline.set(sinks=(sink,))
    finisher.set_mode("inline")
    try:
        recorder.finish(call := _call(), _facts())
        assert sink.threads == [threading.get_ident()] and sink.calls == [call]
    finally:
        finisher.set_mode("background")


def test_finish_mode_setting():
    assert resolve(env={}).finish == "background"
    assert resolve(env={"SPENDMETER_FINISH": "inline"}).finish == "inline"
    assert resolve(finish="INLINE", env={}).finish == "inline"
    with pytest.raises(ConfigError, match="SPENDMETER_FINISH"):
        resolve(env={"SPENDMETER_FINISH": "later"})
    with pytest.raises(ValueError):
        finisher.set_mode("later")


def test_a_failing_sink_on_the_finisher_thread_is_contained_and_counted(pipeline):
    errors: list[str] = []

    class Broken:
        kind = "broken"

        def on_call(self, call: Call) -> None:
            raise RuntimeError("a bug of ours")

    good = ThreadOf()
    pipeline.set(sinks=(Broken(), good), count_error=lambda kind, n=1: errors.append(kind))
    recorder.finish(_call(), _facts())
    recorder.finish(_call(), _facts())
    recorder.drain()
    assert errors == ["sink.broken", "sink.broken"] and len(good.calls) == 2


def test_a_flush_from_inside_a_sink_does_not_reenter(pipeline):
    seen: list[int] = []

    class Flushes:
        def on_call(self, call: Call) -> None:
            finisher.flush()  # a budget refreshing its gauges asks while the finisher is mid-batch
            seen.append(finisher.FINISHER.pending())

    pipeline.set(sinks=(Flushes(),))
    f = finisher.FINISHER
    f.enqueue_quietly((_call(), _facts(), "completed"))
    f.enqueue_quietly((_call(), _facts(), "completed"))
    recorder.drain()
    assert seen == [1, 0]  # the second call was not processed inside the first one's sink


def test_exit_writes_what_was_queued_and_a_fork_child_does_not_repeat_the_parents_queue(tmp_path):
    """A normal exit (atexit) finishes what is queued; a forked child starts with an empty queue (the
    parent's calls are the parent's to finish), so nothing is lost and nothing is counted twice."""
    out = tmp_path / "out.txt"
    script = textwrap.dedent(f"""
        import os, sys
        from spendmeter import recorder
        from spendmeter.call import Attribution, Call, Usage
        from spendmeter.providers.base import ResponseFacts
        from spendmeter.runtime import finisher, pipeline as pl

        class Out:
            def on_call(self, call):
                with open({str(out)!r}, "a") as f:
                    f.write(f"{{os.getpid() == parent}} {{call.attribution.user}}\\n")

        parent = os.getpid()
        pl.install(pl.Pipeline(sinks=(Out(),)))
        finisher.FINISHER.delay_s = 60  # nothing is finished by the thread in this test's lifetime
        facts = ResponseFacts(usage=Usage(input=1, output=1, source="reported"))
        for i in range(3):
            recorder.finish(Call(provider="openai", operation="chat", request_model="m",
                                 attribution=Attribution(user=f"p{{i}}")), facts)
        pid = os.fork()
        if pid == 0:
            recorder.finish(Call(provider="openai", operation="chat", request_model="m",
                                 attribution=Attribution(user="child")), facts)
            sys.exit(0)  # atexit runs in the child too
        os.waitpid(pid, 0)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=60)
    lines = sorted(out.read_text().splitlines())
    assert lines == ["False child", "True p0", "True p1", "True p2"]
