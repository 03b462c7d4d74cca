"""A throwaway PostgreSQL for the benchmarks, started the way tests/e2e/servers.py does: initdb into a temp
dir, pg_ctl on a free 127.0.0.1 port, trust auth; as root the server runs as the `postgres` user.

Unlike the tests' cluster, durability is left at PostgreSQL's defaults (fsync on, synchronous_commit on),
so a commit costs what it costs in production; `fast=True` turns both off, as the tests do.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Any


@dataclass
class Postgres:
    bindir: Path
    base: Path
    port: int
    dsn: str
    run_as: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        done = subprocess.run([str(self.bindir / "postgres"), "--version"], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    def stop(self) -> None:
        subprocess.run([str(self.bindir / "pg_ctl"), "-D", str(self.base / "data"), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=60, check=False, **self.run_as)  # fmt: skip
        shutil.rmtree(self.base, ignore_errors=True)


def find_postgres() -> Path | None:
    """The bindir of the newest /usr/lib/postgresql/*/bin, else of `postgres` on PATH."""
    hits = sorted(glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: [int(x) for x in re.findall(r"\d+", p)])
    found = hits[-1] if hits else shutil.which("postgres")
    return Path(found).resolve().parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(argv: list[str], **popen: Any) -> None:
    done = subprocess.run(argv, capture_output=True, timeout=120, check=False, **popen)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with {done.returncode}: {(done.stdout + done.stderr)[-2000:]!r}")


def start(bindir: Path, *, database: str = "bench", fast: bool = False) -> Postgres:
    base = Path(tempfile.mkdtemp(prefix="spendmeter-bench-pg-"))
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = pwd.getpwnam("nobody")
        os.chown(base, user.pw_uid, user.pw_gid)
        run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [],
                  "env": {**os.environ, "HOME": str(base)}}
    port = _free_port()
    pg = Postgres(bindir, base, port, f"postgresql://postgres@127.0.0.1:{port}/{database}", run_as)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base}"
    if fast:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    try:
        _run([str(bindir / "initdb"), "-D", str(base / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8",
              "--locale=C"], **run_as)  # fmt: skip
        _run([str(bindir / "pg_ctl"), "-D", str(base / "data"), "-o", options, "-l", str(base / "pg.log"), "-w", "-t",
              "60", "start"], **run_as)  # fmt: skip
        _run([str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres", "-v",
              "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{database}"'])  # fmt: skip
    except Exception:
        pg.stop()
        raise
    return pg
