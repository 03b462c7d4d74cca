"""The ledger queries and `reconcile` on a real PostgreSQL (NUMERIC sums): the same calls and checks as the
SQLite unit tests, each in a database of its own. Under CI=true a missing PostgreSQL fails this test."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))

import test_analytics as cases
import test_reconcile

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


def test_reconcile_finds_each_planted_discrepancy_on_postgres(fresh_dsn: str, tmp_path: Path) -> None:
    calls = test_reconcile.build_ledger(fresh_dsn)
    billed = test_reconcile.billed_cells(calls)
    test_reconcile.write_openai(tmp_path / "openai.json", billed)
    test_reconcile.write_anthropic(tmp_path / "anthropic.json", billed)
    src = LedgerSource.open(fresh_dsn)
    try:
        test_reconcile.check_planted(src, tmp_path, calls, billed)
    finally:
        src.close()
