"""Hand-made records for sink tests: a `Call` labelled the way the recorder labels a finished one."""

from __future__ import annotations

from spendmeter.call import Call
from spendmeter.telemetry.labels import LabelPolicy


def labelled(call: Call, policy: LabelPolicy | None = None) -> Call:
    """`call` with `identity` and `labels` set by `policy` (a default one if None), as `recorder.finish` does."""
    policy = policy or LabelPolicy()
    call.identity = policy.identity(call.attribution)
    call.labels = policy.labels(call)
    return call
