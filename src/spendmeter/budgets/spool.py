"""The spend spool: settlements that could not reach the store, kept on local disk until it returns.

One JSON line per settlement (`{"r": reservation id or null, "i": [[budget, key, period, nano], ...]}`) in
`<dir>/spend-<pid>.jsonl`. Every append and every replay holds an exclusive `flock` on the file, and a
replay first renames the file away, so two processes (or a restarted one) never replay the same line
twice, and an appender that raced a replay notices (the inode it locked is no longer at the path) and
writes to a fresh file. Bounded by `max_bytes` over the directory: what does not fit is refused and the
caller counts it. A file is replayed in one transaction and deleted after it committed: a crash between
the two is the one case that can count a file's spend twice.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator, Sequence

from spendmeter.budgets.spend import Settlement

log = logging.getLogger("spendmeter")

PREFIX = "spend-"


class Spool:
    def __init__(self, directory: str, *, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        return f"Spool({self.directory!r})"

    def _own(self) -> str:
        return os.path.join(self.directory, f"{PREFIX}{os.getpid()}.jsonl")

    def size(self) -> int:
        total = 0
        for name in self._names():
            try:
                total += os.path.getsize(os.path.join(self.directory, name))
            except OSError:
                pass
        return total

    def _names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.directory) if n.startswith(PREFIX))
        except OSError:
            return []

    def append(self, settlements: Sequence[Settlement]) -> int:
        """Write what fits; returns how many were kept (the rest the caller counts as lost)."""
        lines = [
            json.dumps({"r": rid, "i": [[b, k, p, n] for (b, k, p), n in items]}, ensure_ascii=True) + "\n"
            for rid, items in settlements
        ]
        room = self.max_bytes - self.size()
        kept: list[str] = []
        for line in lines:
            if len(line) > room:
                break
            room -= len(line)
            kept.append(line)
        if not kept:
            return 0
        path = self._own()
        for _ in range(3):  # a replay may rename the file between our open and our lock
            with open(path, "a", encoding="ascii") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    if os.stat(path).st_ino != os.fstat(fh.fileno()).st_ino:
                        continue
                except FileNotFoundError:
                    continue
                fh.write("".join(kept))
                fh.flush()
                os.fsync(fh.fileno())
                return len(kept)
        return 0

    def claim(self) -> Iterator[tuple[str, list[Settlement]]]:
        """Each spool file (ours, or one a dead or busy process left): renamed away under its lock, read,
        and yielded while still locked. The caller applies the settlements, then calls `done(path)`; on
        failure it leaves the file, which the next round picks up again."""
        for name in self._names():
            if ".replaying" in name:
                path = os.path.join(self.directory, name)  # a replay that crashed: pick it up again
            else:
                src = os.path.join(self.directory, name)
                path = f"{src}.replaying-{os.getpid()}"
                try:
                    with open(src, "a", encoding="ascii") as fh:
                        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        os.rename(src, path)
                except OSError:
                    continue  # gone, or an appender holds it right now: next round
            try:
                fh = open(path, encoding="ascii")  # held locked across the yield below
            except OSError:
                continue
            with fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another replayer has it: skip
                    settlements = [_parse(line) for line in fh if line.strip()]
                except (OSError, ValueError, KeyError, TypeError):
                    log.debug("spendmeter: could not read spool file %s", path, exc_info=True)
                    continue
                # The lock is held while the caller applies them: nobody else replays this file meanwhile.
                yield path, settlements

    @staticmethod
    def done(path: str) -> None:
        try:
            os.unlink(path)
        except OSError:
            pass


def _parse(line: str) -> Settlement:
    data = json.loads(line)
    return data["r"], [((b, k, p), int(n)) for b, k, p, n in data["i"]]
