"""python -m spendmeter.dashboards [--check] [--dir grafana/dashboards]"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from spendmeter.dashboards import stale, write


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spendmeter.dashboards", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("grafana/dashboards"),
                        help="where the dashboard JSON lives (default: grafana/dashboards)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the committed JSON differs from the code")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale(args.dir)
        for problem in problems:
            print(f"{args.dir}/{problem}", file=sys.stderr)
        if problems:
            print("regenerate with: python -m spendmeter.dashboards", file=sys.stderr)
        return 1 if problems else 0
    for path in write(args.dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
