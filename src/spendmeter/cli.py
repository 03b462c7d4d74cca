"""The `spendmeter` command: each subcommand lives beside the module it serves and registers itself here."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# module path -> it defines `register(subparsers)`; each subcommand's parser sets `func(args) -> int`.
_SUBCOMMAND_MODULES = (
    "spendmeter.demo.cli",
    "spendmeter.pricing.cli",
    "spendmeter.budgets.cli",
    "spendmeter.analytics.cli",
    "spendmeter.stack.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spendmeter", description="LLM cost metrics, spans and budgets.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # not built yet in this checkout
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
