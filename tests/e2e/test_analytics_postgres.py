"""The ledger queries on a real PostgreSQL (NUMERIC sums): the same calls and checks as the SQLite unit test,
in a database of their own. Under CI=true a missing PostgreSQL fails this test."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))

import test_analytics as cases

from spendmeter.analytics import LedgerSource


@pytest.fixture
def fresh_dsn(postgres_dsn: str) -> str:
    """A new empty database on the session's server: other tests write to spendmeter_ledger too."""
    name = f"analytics_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_dsn.rsplit("/", 1)[0] + "/" + name


def test_every_grouping_is_exact_on_postgres(fresh_dsn: str) -> None:
    data = cases.make_calls()
    cases.write_ledger(fresh_dsn, data)
    src = LedgerSource.open(fresh_dsn)
    try:
        assert src.dialect == "postgresql"
        cases.check_all(src, data)
    finally:
        src.close()
