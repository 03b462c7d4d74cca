"""`spendmeter budgets check FILE`: validate a budgets file and say what it declares."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from typing import Any

from spendmeter.budgets.config import Budget, BudgetConfig, load_budgets
from spendmeter.errors import ConfigError
from spendmeter.storage.dsn import ENV_PREFIX, PG_SCHEMES, redact_dsn


def register(subparsers: Any) -> None:
    budgets = subparsers.add_parser("budgets", help="work with budget files")
    sub = budgets.add_subparsers(dest="budgets_command", required=True)
    check = sub.add_parser("check", help="validate a budgets file (exit 0 if valid, 2 if not)")
    check.add_argument("file", help="path to the budgets YAML file")
    check.set_defaults(func=check_command)


def check_command(args: argparse.Namespace) -> int:
    try:
        config = load_budgets(args.file)
    except ConfigError as exc:
        print(f"spendmeter budgets: {exc}", file=sys.stderr)
        return 2
    for line in summary(config):
        print(line)
    return 0


def summary(config: BudgetConfig) -> list[str]:
    head = f"{config.file}: {len(config.budgets)} budget(s), timezone {config.timezone}, store {_store(config)}"
    return [head, *(describe(b) for b in config.budgets)]


def _store(config: BudgetConfig) -> str:
    """What the store is, never with a password (checking a file opens no store and reads no env:NAME)."""
    where = config.store_path
    if where is None:
        return "memory (this process only)"
    if where.startswith(ENV_PREFIX):
        return f"from the environment variable {where[len(ENV_PREFIX) :].strip()} (read when the store opens)"
    if where.startswith(PG_SCHEMES):
        return f"postgresql {redact_dsn(where)}"
    return f"sqlite {where}"


def describe(budget: Budget) -> str:
    who = "all calls" if budget.scope == "global" else f"each {budget.scope}"
    if budget.match:
        who += " where " + " and ".join(
            f"{label} in {sorted(values)}" if len(values) > 1 else f"{label}={next(iter(values))}"
            for label, values in sorted(budget.match.items())
        )
    warn = ", ".join(f"{level:.0%}" for level in budget.warn_at) or "none"
    extra = " (pre-call estimate)" if budget.estimate else ""
    return (
        f"  {budget.name}: {who}, ${_money(budget.limit_usd)} per {budget.period}, "
        f"{budget.action}{extra}, warn at {warn}"
    )


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}" if amount == amount.quantize(Decimal("0.01")) else f"{amount:,f}"
