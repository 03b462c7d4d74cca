"""The cost page a person reads: `/costs` beside the cost API, and `spendmeter report --html FILE`.

Spend per day by feature, the top users, the models, and every budget with its state, from the ledger
(exact sums, through `spendmeter.analytics`) and the budgets. One self-contained HTML document: styles
inline, charts as inline SVG (server/charts.py), no script, nothing fetched; the route sends a
Content-Security-Policy that forbids any fetch, so a browser proves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import escape
from typing import Any

from spendmeter.analytics.queries import Group, Totals, Window, grouped, span, total
from spendmeter.analytics.source import LedgerSource, LedgerUnavailable
from spendmeter.analytics.views import money
from spendmeter.runtime.pipeline import current
from spendmeter.server import charts
from spendmeter.server.api import ledger_source
from spendmeter.server.routes import ROUTES, TEXT, Response

PATH = "/costs"
DEFAULT_DAYS = 14
MAX_DAYS = 366
TOP = 10
FEATURES_SHOWN = 7  # then "other features", so the legend stays readable
HTML = "text/html; charset=utf-8"
# Nothing may be fetched: not a script, a font, an image or a style sheet. Inline styles and SVG only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


@dataclass(frozen=True)
class BudgetRow:
    name: str
    scope: str
    key: str
    period: str
    spent: Decimal
    limit: Decimal
    utilization: float
    action: str
    warn_at: tuple[float, ...]
    period_end: datetime | None = None

    @property
    def state(self) -> str:
        """exhausted at the limit, warning from the lowest warn level, else ok."""
        if self.utilization >= 1.0:
            return "exhausted"
        if self.warn_at and self.utilization >= min(self.warn_at):
            return "warning"
        return "ok"


@dataclass
class CostPage:
    generated_at: datetime
    window: Window
    days: list[str]
    totals: Totals
    by_feature: dict[str, list[Decimal]]  # feature -> cost per day (same order as `days`)
    top_users: list[Group]
    models: list[Group]
    budgets: list[BudgetRow] = field(default_factory=list)
    source: str = ""


def _day_window(days: int, now: datetime) -> tuple[Window, list[str]]:
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    return Window(start, None), [(first + timedelta(days=i)).isoformat() for i in range(days)]


def _days_of(window: Window, src: LedgerSource, now: datetime) -> list[str]:
    """The UTC days a given window covers; an open start begins at the ledger's first call."""
    start = window.start or span(src)[0] or now
    end = (window.end or now) - timedelta(microseconds=1)
    first, last = start.astimezone(UTC).date(), max(end.astimezone(UTC).date(), start.astimezone(UTC).date())
    return [(first + timedelta(days=i)).isoformat() for i in range(min((last - first).days + 1, MAX_DAYS))]


def collect(src: LedgerSource, *, days: int = DEFAULT_DAYS, window: Window | None = None,
            budgets: Iterable[BudgetRow] = (), now: datetime | None = None, top: int = TOP) -> CostPage:
    """Everything the page shows: for `window` if given, else the last `days` UTC days (today included)."""
    now = now or datetime.now(UTC)
    if window is None:
        window, day_list = _day_window(days, now)
    else:
        day_list = _days_of(window, src, now)
    per_feature: dict[str, Decimal] = {}
    cells: dict[tuple[str, str], Decimal] = {}
    for g in grouped(src, ("day", "feature"), window, order="key"):
        cells[(g.key["day"], g.key["feature"])] = g.totals.cost
        per_feature[g.key["feature"]] = per_feature.get(g.key["feature"], Decimal(0)) + g.totals.cost
    ranked = sorted(per_feature, key=lambda f: (-per_feature[f], f))
    shown, rest = ranked[:FEATURES_SHOWN], ranked[FEATURES_SHOWN:]
    by_feature = {f: [cells.get((d, f), Decimal(0)) for d in day_list] for f in shown}
    if rest:
        by_feature["other features"] = [sum((cells.get((d, f), Decimal(0)) for f in rest), Decimal(0))
                                        for d in day_list]
    return CostPage(
        generated_at=now, window=window, days=day_list, totals=total(src, window), by_feature=by_feature,
        top_users=grouped(src, ("user",), window, limit=top), models=grouped(src, ("provider", "model"), window),
        budgets=list(budgets), source=src.target.redacted,
    )


def budget_rows(statuses: Iterable[Any]) -> list[BudgetRow]:
    """From the running budget engine's `status()` (spendmeter.budgets.engine.BudgetStatus)."""
    return [BudgetRow(s.name, s.scope, s.key, s.period, s.spent, s.limit, float(s.utilization), s.action,
                      tuple(s.warn_at), s.period_end) for s in statuses]


def budget_rows_from_ledger(config: Any, src: LedgerSource, now: datetime | None = None,
                            top: int = TOP) -> list[BudgetRow]:
    """Each budget of a budgets file (spendmeter.budgets.BudgetConfig) over its current period, summed from
    the ledger: for a report written where no budget engine runs. Per-key budgets show their top spenders."""
    from spendmeter.budgets.engine import GLOBAL_KEY
    from spendmeter.budgets.periods import window as period_window

    now = now or datetime.now(UTC)
    rows: list[BudgetRow] = []
    for b in config.budgets:
        win = period_window(b.period, now, config.tz)
        dims = tuple(sorted(b.match))
        by = ((b.scope,) if b.per_key else ()) + tuple(d for d in dims if d != b.scope)
        spent: dict[str, Decimal] = {}
        for g in grouped(src, by, Window(win.start, win.end), order="key") if by else []:
            if all(g.key[d] in b.match[d] for d in dims):
                key = g.key[b.scope] if b.per_key else GLOBAL_KEY
                spent[key] = spent.get(key, Decimal(0)) + g.totals.cost
        if not by:
            spent[GLOBAL_KEY] = total(src, Window(win.start, win.end)).cost
        if not b.per_key:
            spent.setdefault(GLOBAL_KEY, Decimal(0))
        for key in sorted(spent, key=lambda k: (-spent[k], k))[:top]:
            rows.append(BudgetRow(b.name, b.scope, key, b.period, spent[key], b.limit_usd,
                                  float(spent[key] / b.limit_usd), b.action, tuple(b.warn_at), win.end))
    return rows


# ------------------------------------------------------------------------------------------------ render


def usd(value: float | Decimal) -> str:
    """A short dollar figure for chart labels (the tables show exact sums)."""
    v = float(value)
    if v == 0:
        return "$0"
    if abs(v) >= 100:
        return f"${v:,.0f}"
    if abs(v) >= 1:
        return f"${v:,.2f}"
    return "$" + f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) >= 0.0001 else f"${v:.1e}"


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px;color:#1d2329;
background:#f6f7f9}h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:0 0 10px}
.sub{color:#5b6570;margin:0 0 18px}.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:16px}
.card{background:#fff;border:1px solid #dde1e6;
border-radius:8px;padding:10px 16px;min-width:140px}.card b{display:block;font-size:20px}.card span{color:#5b6570}
section{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:14px 16px;margin-bottom:16px}
.row{display:flex;gap:16px;flex-wrap:wrap}.row section{flex:1 1 480px}table{border-collapse:collapse;width:100%;
margin-top:8px}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceff2}td.n,th.n{text-align:right;
font-variant-numeric:tabular-nums}.chart text{font-size:11px;fill:#1d2329}.chart .grid{stroke:#e3e6ea}
.chart .mark{stroke:#D55E00;stroke-dasharray:3 3}.state{padding:1px 8px;border-radius:10px;color:#fff;font-size:12px}
.ok{background:#009E73}.warning{background:#B07600}.exhausted{background:#D55E00}.empty{color:#5b6570}
"""


def _table(headers: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    head = "".join(f'<th class="n">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _group_rows(groups: list[Group], label: str, dims: tuple[str, ...], title: str, sid: str) -> str:
    chart = charts.hbars([(" / ".join(g.key[d] for d in dims), float(g.totals.cost)) for g in groups], usd,
                         title=title, label_width=120 + 50 * len(dims))
    rows = [[escape(" / ".join(g.key[d] for d in dims)), f"${money(g.totals.cost)}", f"{g.totals.tokens:,}",
             f"{g.totals.calls:,}"] for g in groups]
    return (f'<section id="{sid}"><h2>{escape(title)}</h2>{chart}'
            + _table([label, "Cost (USD)", "Tokens", "Calls"], rows, {1, 2, 3}) + "</section>")


def _budgets(rows: list[BudgetRow]) -> str:
    if not rows:
        return ('<section id="budgets"><h2>Budgets</h2><p class="empty">No budgets: declare them in a budgets '
                "file (SPENDMETER_BUDGETS) to see their state here.</p></section>")
    labels = [(f"{r.name} · {r.key}" if r.scope != "global" else r.name, r.utilization) for r in rows]
    chart = charts.hbars(labels, lambda v: f"{v:.0%}", title="Budget utilization",
                         colours=[charts.STATE_COLOURS[r.state] for r in rows],
                         max_value=min(max(1.2, *(r.utilization for r in rows)), 3.0), marks=(1.0,))
    table = _table(
        ["Budget", "Scope", "Key", "Period", "Spent (USD)", "Limit (USD)", "Used", "State", "Action"],
        [[escape(r.name), escape(r.scope), escape(r.key), escape(r.period), f"${money(r.spent)}",
          f"${money(r.limit)}", f"{r.utilization:.1%}", f'<span class="state {r.state}">{r.state}</span>',
          escape(r.action)] for r in rows],
        {4, 5, 6},
    )
    return f'<section id="budgets"><h2>Budgets</h2>{chart}{table}</section>'


def render(page: CostPage, title: str = "LLM spend") -> str:
    t = page.totals
    first, last = page.days[0], page.days[-1]
    cards = [("Spend", f"${money(t.cost)}"), ("Calls", f"{t.calls:,}"), ("Tokens", f"{t.tokens:,}"),
             ("Users", f"{t.users:,}"), ("Unpriced calls", f"{t.unpriced_calls:,}"),
             ("Blocked calls", f"{t.blocked_calls:,}")]
    card_html = "".join(f'<div class="card"><span>{escape(k)}</span><b>{escape(v)}</b></div>' for k, v in cards)
    daily = charts.stacked_bars(page.days, {f: [float(c) for c in costs] for f, costs in page.by_feature.items()},
                                usd, title="Spend per day by feature")
    feature_rows = [[escape(f), f"${money(sum(costs, Decimal(0)))}"] for f, costs in page.by_feature.items()]
    generated = page.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = (
        f"<h1>{escape(title)}</h1>"
        f'<p class="sub">{escape(first)} to {escape(last)} (UTC days) · from the ledger {escape(page.source)} · '
        f"generated {generated}. Exact sums of every recorded call; unpriced calls are counted, never as $0.</p>"
        f'<div class="cards" id="totals">{card_html}</div>'
        f'<section id="daily"><h2>Spend per day by feature</h2>{daily}'
        + _table(["Feature", "Cost (USD)"], feature_rows, {1}) + "</section>"
        '<div class="row">'
        + _group_rows(page.top_users, "User", ("user",), "Top users", "users")
        + _group_rows(page.models, "Provider / model", ("provider", "model"), "Models", "models")
        + "</div>" + _budgets(page.budgets)
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


def render_unavailable(reason: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>LLM spend: no ledger</title>'
        f"<style>{STYLE}</style></head><body><h1>LLM spend</h1><section><p>The cost page reads spendmeter's "
        f"ledger, and there is none to read: {escape(reason)}</p></section></body></html>\n"
    )


# ------------------------------------------------------------------------------------------------- route


def _int(query: Mapping[str, list[str]], name: str, default: int, high: int) -> int | None:
    values = query.get(name)
    if not values:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        return None
    return value if 1 <= value <= high else None


def respond(query: Mapping[str, list[str]], registry: Any = None) -> Response:
    """GET /costs[?days=N&limit=N] for the running spendmeter, from its ledger and budget engine."""
    headers = (("Content-Security-Policy", CSP), ("Cache-Control", "no-store"))
    days, top = _int(query, "days", DEFAULT_DAYS, MAX_DAYS), _int(query, "limit", TOP, 1000)
    if days is None or top is None:
        return Response(400, TEXT, f"days: 1..{MAX_DAYS}, limit: 1..1000\n".encode())
    try:
        src = ledger_source()  # the cost API's reader: this process's rows flushed first, one per target
        guard = current().guard
        statuses = guard.status() if guard is not None else []
        page = collect(src, days=days, budgets=budget_rows(statuses), top=top)
    except LedgerUnavailable as exc:
        return Response(503, HTML, render_unavailable(str(exc)).encode(), headers)
    return Response(200, HTML, render(page).encode(), headers)


def register() -> None:
    """Serve the page wherever /metrics and the cost API are served (idempotent)."""
    ROUTES[PATH] = respond


register()


# ------------------------------------------------------------------------------------------------ report


def report_command(src: LedgerSource, window: Window, path: str, budgets_file: str | None = None) -> int:
    """`spendmeter report --html FILE [--budgets FILE]`: the page for `window` (default: the last
    DEFAULT_DAYS days), budgets summed from the ledger. Closes `src`. Exit 0, or 2 with the reason."""
    import sys

    from spendmeter.errors import ConfigError

    try:
        rows: list[BudgetRow] = []
        if budgets_file:
            from spendmeter.budgets import load_budgets

            rows = budget_rows_from_ledger(load_budgets(budgets_file), src)
        bounded = window if (window.start or window.end) else None
        page = collect(src, window=bounded, budgets=rows)
        with open(path, "w", encoding="utf-8") as out:
            out.write(render(page))
    except (LedgerUnavailable, ConfigError, OSError) as exc:
        print(f"spendmeter report: {exc}", file=sys.stderr)
        return 2
    finally:
        src.close()
    print(f"wrote {path}: ${money(page.totals.cost)} over {page.totals.calls:,} calls, "
          f"{page.days[0]} to {page.days[-1]} (UTC)")
    return 0
