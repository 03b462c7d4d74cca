"""Faults in the files spendmeter writes (issue #12 item 3): SQLite paths that cannot be used fail at open (never
with SIGBUS later), a deleted store file is recreated and counted, a full disk costs counted rows and no
crash, a missing multiprocess directory is a ConfigError at init(). Real SQLite files; the full disk is a
1 MiB tmpfs (needs root, as in CI's container).

Every test prints a `RELIABILITY:` line with what it measured; RELIABILITY.md is written from them.
"""

from __future__ import annotations

import os
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from test_budget_reliability import a_call, config, engine_on, finish

import spendmeter
from spendmeter.budgets import BudgetExceeded
from spendmeter.budgets.store import SQLiteStore
from spendmeter.call import Attribution
from spendmeter.errors import ConfigError


# -- 3. files SQLite cannot use fail at open, never later (and never with SIGBUS) --------------------------------
def test_unusable_sqlite_stores_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "text.db").write_text("not a database, just text that is long enough")
    cases = {
        "a directory": tmp_path / "adir",
        "not a SQLite file": tmp_path / "text.db",
        "under /proc": Path("/proc/self/spend.db"),
    }
    for what, path in cases.items():
        with pytest.raises(ConfigError, match="cannot open the SQLite file") as info:
            SQLiteStore(str(path))
        print(f"\nRELIABILITY: SQLite store {what}: {info.value}")


def test_an_immutable_sqlite_store_is_refused_not_a_sigbus(tmp_path: Path) -> None:
    import subprocess

    db = tmp_path / "spend.db"
    SQLiteStore(str(db)).close()
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        with pytest.raises(ConfigError, match="read-only"):
            SQLiteStore(str(db))
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=False)


def test_a_missing_multiprocess_directory_is_a_config_error_at_init(pipeline, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR"):
        spendmeter.init(registry=CollectorRegistry(), serve_metrics=False)


def test_a_deleted_spend_store_file_is_recreated_and_counted(tmp_path: Path) -> None:
    from spendmeter import _contain

    _contain.reset()
    db = tmp_path / "spend.db"
    engine = engine_on(config(f"sqlite:///{db}"))
    finish(engine, a_call(), Decimal("0.001"))
    engine.flush()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{db}{suffix}"):
            os.unlink(f"{db}{suffix}")
    for _ in range(5):
        call = a_call()
        engine.check(call)
        finish(engine, call, Decimal("0.001"))
    deadline = time.monotonic() + 10  # recreating the file may cost the first check its deadline
    while (engine.blind or not engine.flush()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.spent("team-daily") == Decimal("0.005")  # everything after the deletion is in the new file
    assert _contain.counts().get("storage.sqlite_file_replaced", 0) >= 1
    engine.close()


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 1 MiB tmpfs: needs root (CI runs the suite as root in its container); skipped elsewhere."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True,
                      check=False).returncode != 0:  # fmt: skip
        pytest.skip("cannot mount a small tmpfs here (not root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_never_crashes_the_host_and_losses_are_counted(full_disk: Path) -> None:
    from spendmeter import _contain
    from spendmeter.sinks.ledger import LedgerSink

    _contain.reset()
    engine = engine_on(config(f"sqlite:///{full_disk / 'spend.db'}"))
    sink = LedgerSink(f"sqlite:///{full_disk / 'ledger.db'}", flush_interval_s=0.01)
    fd = os.open(full_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:  # fill what is left
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass
    finally:
        os.close(fd)
    for i in range(300):
        call = a_call()
        call.attribution = Attribution(user=f"user-{i}-" + "x" * 200)  # wide rows: new pages needed
        try:
            engine.check(call)
        except BudgetExceeded:
            continue
        finish(engine, call, Decimal("0.0001"))
        sink.on_call(call)
    sink.flush(10)
    counts = _contain.counts()
    print(f"\nRELIABILITY: disk full: ledger {sink.written} written, {sink.failed_rows} lost and counted; spend store "
          f"{'blind' if engine.blind else 'up'}, {engine.writer.pending} settlements kept in memory; counts {counts}")
    assert sink.written + sink.failed_rows + sink.dropped == 300
    assert sink.failed_rows == 0 or counts.get("ledger.write_failed") == sink.failed_rows
    (full_disk / "filler").unlink()  # space again: the kept spend lands
    deadline = time.monotonic() + 10
    while engine.blind and time.monotonic() < deadline:
        time.sleep(0.05)
    engine.flush()
    assert engine.writer.dropped == 0
    sink.close()
    engine.close()
