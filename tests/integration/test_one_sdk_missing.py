"""instrument() on a machine without one of the SDKs instruments the other and says so."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import logging, sys
    sys.modules["anthropic"] = None          # as if the package were not installed
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    import spendmeter
    patched = spendmeter.instrument()
    print("PATCHED", sorted(patched), patched.get("openai", 0) > 0)
    """
)


def test_missing_anthropic_still_instruments_openai_and_says_so():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    patched = next(line for line in out.stdout.splitlines() if line.startswith("PATCHED"))
    assert "'openai'" in patched and "'anthropic'" not in patched and patched.endswith("True")
    assert "the anthropic SDK is not installed" in out.stderr
