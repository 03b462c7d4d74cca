"""`spendmeter report` and `spendmeter reconcile`: the ledger's exact numbers on the command line.

    spendmeter report --ledger sqlite:///ledger.db --by feature --since 2025-06-01 --format csv
    spendmeter reconcile --ledger env:SPENDMETER_LEDGER_DSN --openai costs.json --tolerance 5%

The ledger is `--ledger`, else SPENDMETER_LEDGER (as `init()` reads it). Exit codes: 0 fine, 1 reconcile
found a difference above the tolerance, 2 bad usage or no ledger.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from typing import Any

from spendmeter.analytics import queries as q
from spendmeter.analytics import views
from spendmeter.analytics.periods import BadInput, window
from spendmeter.analytics.source import ENABLE_HINT, LedgerSource, LedgerUnavailable
from spendmeter.errors import ConfigError

EXIT_OK, EXIT_DIFFERENCE, EXIT_USAGE = 0, 1, 2
ENV_LEDGER = "SPENDMETER_LEDGER"
BY_CHOICES = tuple(q.DIMENSIONS)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("report", help="spend, tokens and calls from the ledger, grouped (exact numbers)",
                              description="Spend, tokens and calls from the per-call ledger, grouped by one or "
                              "more dimensions. Exact decimal sums, where Prometheus approximates.")
    _ledger_args(p)
    p.add_argument("--by", action="append", choices=BY_CHOICES, metavar="DIM",
                   help=f"group by this dimension ({', '.join(BY_CHOICES)}); repeat for two (default: feature)")
    for name in q.FILTER_COLUMNS:
        p.add_argument(f"--{name}", default=None, help=f"only calls of this {name}")
    p.add_argument("--tag", default=None, metavar="NAME", help="group by this attribute() tag instead (team, "
                   "tenant, ...): calls without it show as unknown")
    p.add_argument("--limit", type=int, default=None, help="at most this many rows (highest spend first)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--html", metavar="FILE", default=None, help="write the cost page instead (spend per day by "
                   "feature, top users, models, budgets; charts; self-contained) to FILE")
    p.add_argument("--budgets", metavar="FILE", default=None, help="with --html: these budgets' current periods, "
                   "summed from the ledger")
    p.set_defaults(func=report_main)

    r = subparsers.add_parser("reconcile", help="compare the ledger with a provider's own cost data",
                              description="Compare ledger spend per day x provider x model with the provider's "
                              "cost export and explain the differences; exit 1 above --tolerance.")
    _ledger_args(r)
    r.add_argument("--openai", action="append", default=[], metavar="FILE",
                   help="OpenAI organization Costs API pages (JSON; repeat for several pages)")
    r.add_argument("--anthropic", action="append", default=[], metavar="FILE",
                   help="Anthropic Admin API cost_report pages (JSON; amounts in cents; repeatable)")
    r.add_argument("--csv", action="append", default=[], metavar="FILE", help="CSV: date,provider,model,cost_usd")
    r.add_argument("--tolerance", default="5%", help="allowed difference of the total: 5%%, 0.05 or $2 "
                   "(default 5%%)")
    r.add_argument("--format", choices=("table", "json"), default="table")
    r.set_defaults(func=reconcile_main)


def _ledger_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ledger", default=None, help=f"the ledger: a SQLite path, sqlite:///file.db, postgresql://... "
                   f"or env:VAR (default: ${ENV_LEDGER})")
    p.add_argument("--since", default=None, help="from this date (2025-06-01) or ISO-8601 time, UTC")
    p.add_argument("--until", default=None, help="through this date (the whole day), or before this time")
    p.add_argument("--days", default=None, help="today and the N-1 days before it (UTC)")


def open_ledger(args: argparse.Namespace) -> LedgerSource:
    target = args.ledger or os.environ.get(ENV_LEDGER)
    if not target:
        raise LedgerUnavailable(f"no ledger given: pass --ledger or set {ENV_LEDGER}; {ENABLE_HINT}")
    return LedgerSource.open(target, key="--ledger" if args.ledger else ENV_LEDGER)


def _fail(command: str, exc: Exception) -> int:
    print(f"spendmeter {command}: {exc}", file=sys.stderr)
    return EXIT_USAGE


def report_main(args: argparse.Namespace) -> int:
    try:
        w = window(args.since, args.until, args.days, names=("--since", "--until", "--days"))
        src = open_ledger(args)
    except (BadInput, LedgerUnavailable, ConfigError) as exc:
        return _fail("report", exc)
    if args.html:
        from spendmeter.server import page  # the same page as /costs, written to a file

        return page.report_command(src, w, args.html, args.budgets)
    by = tuple(args.by or ["feature"])
    filters = {k: getattr(args, k) for k in q.FILTER_COLUMNS if getattr(args, k) is not None}
    try:
        order = "key" if by[0] == "day" else "cost"
        if args.tag:
            from spendmeter.analytics.tags import by_tag

            by = (args.tag,)
            groups = by_tag(src, args.tag, w, filters, limit=args.limit)
        else:
            groups = q.grouped(src, by, w, filters, limit=args.limit, order=order)
        totals = q.total(src, w, filters)
    except (LedgerUnavailable, ValueError) as exc:  # ValueError: a bad --tag name
        return _fail("report", exc)
    finally:
        src.close()
    sys.stdout.write(render_report(groups, totals, by, w, args.format))
    return EXIT_OK


def render_report(groups: list[q.Group], totals: q.Totals, by: tuple[str, ...], w: q.Window, fmt: str) -> str:
    rows = [views.group_json(g) for g in groups]
    if fmt == "json":
        return json.dumps({**views.window_json(w), "by": list(by), "currency": "USD", "rows": rows,
                           "totals": views.totals_json(totals)}, indent=2) + "\n"
    columns = [*by, "cost_usd", "tokens", "input", "cache_read", "cache_write", "output", "reasoning", "calls",
               "unpriced_calls", "error_calls", "blocked_calls", "conversations"]

    def cells(r: dict[str, Any]) -> list[str]:
        t = r["tokens_by_class"]
        return [*(str(r[d]) for d in by), r["cost_usd"], str(r["tokens"]), *(str(t[k]) for k in
                ("input", "cache_read", "cache_write", "output", "reasoning")),
                *(str(r[k]) for k in ("calls", "unpriced_calls", "error_calls", "blocked_calls", "conversations"))]

    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(cells(r) for r in rows)
        return buf.getvalue()
    short = [*by, "cost_usd", "tokens", "calls", "unpriced", "errors", "blocked"]
    body = [[*(str(r[d]) for d in by), r["cost_usd"], f"{r['tokens']:,}", f"{r['calls']:,}",
             str(r["unpriced_calls"]), str(r["error_calls"]), str(r["blocked_calls"])] for r in rows]
    t = views.totals_json(totals)
    body.append([*(["TOTAL"] + [""] * (len(by) - 1)), t["cost_usd"], f"{t['tokens']:,}", f"{t['calls']:,}",
                 str(t["unpriced_calls"]), str(t["error_calls"]), str(t["blocked_calls"])])
    span = f"{views.stamp(w.start) or 'the start'} .. {views.stamp(w.end) or 'now'}"
    return f"spend by {' x '.join(by)}, {span} (USD, exact)\n" + views.table(short, body, numeric_from=len(by))


def reconcile_main(args: argparse.Namespace) -> int:
    from spendmeter.analytics import reconcile as rc

    try:
        tolerance = rc.parse_tolerance(args.tolerance)
        w = window(args.since, args.until, args.days, names=("--since", "--until", "--days"))
        lines = rc.load_exports(openai=args.openai, anthropic=args.anthropic, csv_files=args.csv)
        src = open_ledger(args)
    except (BadInput, LedgerUnavailable, ConfigError, rc.ExportError, OSError) as exc:
        return _fail("reconcile", exc)
    try:
        result = rc.reconcile(src, lines, w, tolerance)
    except LedgerUnavailable as exc:
        return _fail("reconcile", exc)
    finally:
        src.close()
    sys.stdout.write(json.dumps(result.as_json(), indent=2) + "\n" if args.format == "json" else result.render())
    return EXIT_DIFFERENCE if result.over else EXIT_OK
