"""litellm and google-genai are optional: without them spendmeter instruments the rest and says so; with them,
instrument() does not import them (LiteLLM's import takes seconds), and patches them when the app does."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

MISSING = textwrap.dedent(
    """
    import logging, sys
    sys.modules["litellm"] = None            # as if the packages were not installed
    sys.modules["google.genai"] = None
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    import spendmeter
    from spendmeter.runtime.lifecycle import report_sdks
    patched = spendmeter.instrument()
    report_sdks(patched)
    print("PATCHED", sorted(patched))
    """
)

LAZY = textwrap.dedent(
    """
    import os, sys
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import spendmeter
    patched = spendmeter.instrument()
    print("IMPORTED", "litellm" in sys.modules, "google.genai" in sys.modules, patched["litellm"] > 0)
    import litellm
    from google.genai import models
    print("WRAPPED", type(litellm.completion).__name__, type(vars(models.Models)["_generate_content"]).__name__)
    spendmeter.uninstrument()
    print("REMOVED", type(litellm.completion).__name__, type(vars(models.Models)["_generate_content"]).__name__)
    """
)


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def test_missing_litellm_and_google_genai_still_instrument_the_others_and_say_so():
    out = _run(MISSING)
    assert out.returncode == 0, out.stderr
    assert "PATCHED ['anthropic', 'openai']" in out.stdout
    assert "the litellm SDK is not installed" in out.stderr
    assert "the google.genai SDK is not installed" in out.stderr


def test_instrument_does_not_import_them_and_patches_them_on_import():
    pytest.importorskip("litellm")
    pytest.importorskip("google.genai")
    out = _run(LAZY)
    assert out.returncode == 0, out.stderr
    assert "IMPORTED False False True" in out.stdout
    assert "WRAPPED FunctionWrapper FunctionWrapper" in out.stdout
    assert "REMOVED function function" in out.stdout
