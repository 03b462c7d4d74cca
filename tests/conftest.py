"""Shared fixtures: each test that records calls builds its own pipeline, and the previous one comes back."""

from __future__ import annotations

import os
from typing import Any

import pytest

from spendmeter import _contain, recorder
from spendmeter.runtime import pipeline as pl
from spendmeter.testing import CollectingSink

IN_CI = os.environ.get("CI", "").lower() == "true"


class TestPipeline:
    """The pipeline a test runs with: `set(**fields)` installs the current one with those fields changed."""

    __test__ = False

    def set(self, **changes: Any) -> pl.Pipeline:
        recorder.drain()  # calls finished so far belong to the pipeline they finished under
        pl.install(pl.current().replace(**changes))
        return pl.current()

    @property
    def current(self) -> pl.Pipeline:
        return pl.current()


@pytest.fixture
def pipeline():
    """A fresh, empty pipeline for this test; whatever was installed before is reinstalled afterwards."""
    recorder.drain()
    _contain.reset()
    previous = pl.install(pl.Pipeline())
    yield TestPipeline()
    recorder.drain()
    pl.install(previous)


@pytest.fixture
def collected(pipeline) -> CollectingSink:
    sink = CollectingSink()
    pipeline.set(sinks=(sink,))
    return sink
