"""A throwaway PostgreSQL for the benchmarks: the e2e tests' own helper (`tests/e2e/servers.py`: initdb into a
temp dir, pg_ctl on a free 127.0.0.1 port, trust auth; as root the server runs as the `postgres` user), with
PostgreSQL's default durability unless `fast`, so a commit costs what it costs in production.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from glob import glob
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

from servers import Postgres, start_postgres


def find_postgres() -> Path | None:
    """The bindir of the newest /usr/lib/postgresql/*/bin, else of `postgres` on PATH."""
    hits = sorted(glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: [int(x) for x in re.findall(r"\d+", p)])
    found = hits[-1] if hits else shutil.which("postgres")
    return Path(found).resolve().parent if found else None


def start(bindir: Path, *, database: str = "bench", fast: bool = False) -> Postgres:
    return start_postgres(str(bindir / "postgres"), database, durable=not fast)


def version(pg: Postgres) -> str:
    done = subprocess.run([str(pg.bindir / "postgres"), "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()
