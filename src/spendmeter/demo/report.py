"""What the demo prints: a progress line while it runs, and a report when it ends.

`DemoStats` is an ordinary spendmeter sink (`spendmeter.add_sink`): it reads the same finished `Call`
records as the Prometheus sink, so the report's numbers and `/metrics` agree. Money stays `Decimal`.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from spendmeter.call import UNKNOWN, Call, Cost, Unpriced

TOP_USERS = 10
KEYS_PER_BUDGET = 5  # rows of a per-user/feature budget in the report; /api/budgets has them all
_ZERO = Decimal(0)


@dataclass(slots=True)
class ModelLine:
    provider: str
    model: str
    calls: int = 0
    input: int = 0
    cache_read: int = 0
    cache_write: int = 0
    output: int = 0
    reasoning: int = 0
    cost: Decimal = _ZERO
    unpriced: int = 0


@dataclass(slots=True)
class Snapshot:
    calls: int
    spend: Decimal
    blocked: int
    errors: int


@dataclass
class DemoStats:
    """A sink that tallies every finished call for the report. Thread-safe; `on_call` is a few dict updates."""

    calls: int = 0
    spend: Decimal = _ZERO
    status: Counter[str] = field(default_factory=Counter)
    feature_spend: defaultdict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    feature_calls: Counter[str] = field(default_factory=Counter)
    user_spend: defaultdict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    user_calls: Counter[str] = field(default_factory=Counter)
    user_blocked: Counter[str] = field(default_factory=Counter)
    models: dict[tuple[str, str], ModelLine] = field(default_factory=dict)
    unpriced: Counter[tuple[str, str]] = field(default_factory=Counter)
    retried: int = 0  # calls that needed more than one HTTP attempt (the SDK retried a 429)
    messages: Counter[str] = field(default_factory=Counter)  # user messages by outcome: ok, error, blocked
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def on_call(self, call: Call) -> None:
        who = call.attribution
        user, feature = who.user or UNKNOWN, who.feature or UNKNOWN
        cost = call.cost.total if isinstance(call.cost, Cost) else _ZERO
        u = call.usage
        with self._lock:
            self.calls += 1
            self.spend += cost
            self.status[call.status] += 1
            self.feature_spend[feature] += cost
            self.feature_calls[feature] += 1
            self.user_spend[user] += cost
            self.user_calls[user] += 1
            if call.status == "blocked":
                self.user_blocked[user] += 1
            self.retried += call.attempts > 1
            key = (call.provider, call.model)
            line = self.models.get(key)
            if line is None:
                line = self.models[key] = ModelLine(*key)
            line.calls += 1
            line.input += u.input
            line.cache_read += u.cache_read
            line.cache_write += u.cache_write
            line.output += u.output
            line.reasoning += u.reasoning
            line.cost += cost
            if isinstance(call.cost, Unpriced):
                line.unpriced += 1
                self.unpriced[key] += 1

    def count_message(self, outcome: str) -> None:
        with self._lock:
            self.messages[outcome] += 1

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self.calls, self.spend, self.status["blocked"], self.status["error"])


def usd(amount: Decimal) -> str:
    """Dollars for people: cents from $1, 4 decimals below (LLM calls cost fractions of a cent), 6 below 1c."""
    if 0 < abs(amount) < Decimal("0.0001"):
        return f"${amount:,.6f}"
    if abs(amount) < 1:
        return f"${amount:,.4f}"
    return f"${amount:,.2f}"


def progress_line(elapsed_s: float, snap: Snapshot, messages: int) -> str:
    return (
        f"[{elapsed_s:6.1f}s] messages {messages:>6,}  calls {snap.calls:>6,}  spend {usd(snap.spend):>10}  "
        f"blocked {snap.blocked:>5,}  errors {snap.errors:>4,}"
    )


def _table(headers: tuple[str, ...], rows: Iterable[tuple[Any, ...]], *, left: int = 1) -> list[str]:
    """Plain aligned columns: the first `left` columns left-aligned, numbers right-aligned."""
    cells = [tuple(str(c) for c in headers), *(tuple(str(c) for c in row) for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    out = []
    for row in cells:
        parts = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        out.append("  " + "  ".join(parts).rstrip())
    return out


def _share(part: Decimal, whole: Decimal) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def format_report(
    stats: DemoStats,
    *,
    elapsed_s: float,
    budget_status: list[Any],
    metrics_url: str | None,
    real: bool = False,
    ledger: str | None = None,
) -> str:
    with stats._lock:  # a consistent picture even if a straggling call finishes while we format
        return _format(stats, elapsed_s, budget_status, metrics_url, real, ledger)


def _format(stats: DemoStats, elapsed_s: float, budget_status: list[Any], metrics_url: str | None,
            real: bool, ledger: str | None = None) -> str:
    total = stats.spend
    msgs = sum(stats.messages.values())
    lines = [
        "",
        "=" * 78,
        f"spendmeter demo report: {elapsed_s:.1f} s, {msgs:,} user messages, {stats.calls:,} LLM calls, "
        f"{usd(total)} spent",
        "=" * 78,
        "",
        "Spend by feature",
    ]
    features = sorted(stats.feature_spend, key=lambda f: (-stats.feature_spend[f], f))
    lines += _table(
        ("feature", "calls", "spend", "share"),
        ((f, f"{stats.feature_calls[f]:,}", usd(stats.feature_spend[f]), _share(stats.feature_spend[f], total))
         for f in features),
    )

    lines += ["", f"Top users (of {len(stats.user_spend)})"]
    users = sorted(stats.user_spend, key=lambda u: (-stats.user_spend[u], u))[:TOP_USERS]
    lines += _table(
        ("user", "calls", "blocked", "spend", "share"),
        ((u, f"{stats.user_calls[u]:,}", f"{stats.user_blocked[u]:,}", usd(stats.user_spend[u]),
          _share(stats.user_spend[u], total)) for u in users),
    )

    lines += ["", "Models (tokens by class; reasoning is part of output)"]
    models = sorted(stats.models.values(), key=lambda m: (-m.cost, m.provider, m.model))
    lines += _table(
        ("provider", "model", "calls", "input", "cache_read", "cache_write", "output", "reasoning", "cost"),
        ((m.provider, m.model, f"{m.calls:,}", f"{m.input:,}", f"{m.cache_read:,}", f"{m.cache_write:,}",
          f"{m.output:,}", f"{m.reasoning:,}", _model_cost(m)) for m in models),
        left=2,
    )

    lines += ["", "Budgets (current period; the top keys of per-user/feature budgets)"]
    if budget_status:
        shown, hidden = _top_keys(budget_status)
        lines += _table(
            ("budget", "scope", "key", "period", "spent", "limit", "used", "action", "state"),
            ((s.name, s.scope, s.key, s.period, usd(s.spent), usd(s.limit), f"{s.utilization:.0%}", s.action,
              _budget_state(s)) for s in shown),
            left=4,
        )
        if hidden:
            lines.append(f"  ... and {hidden} more keys with spend (all of them at /api/budgets)")
    else:
        lines.append("  (no budget has any spend yet)")

    st = stats.status
    lines += [
        "",
        "Outcomes",
        f"  calls: {st['ok']:,} ok, {st['error']:,} error, {st['blocked']:,} blocked by a budget "
        f"(never sent); {stats.retried:,} needed an SDK retry",
        f"  user messages: {stats.messages['ok']:,} answered, {stats.messages['error']:,} failed, "
        f"{stats.messages['blocked']:,} refused by a budget",
    ]
    if stats.unpriced:
        which = ", ".join(f"{p}/{m} x{n}" for (p, m), n in sorted(stats.unpriced.items()))
        lines.append(f"  unpriced calls: {sum(stats.unpriced.values()):,} ({which}): tokens counted, cost not")
    else:
        lines.append("  unpriced calls: 0")

    lines += ["", "Where to look"]
    if metrics_url:
        lines += [
            f"  {metrics_url}/metrics       Prometheus exposition (llm_cost_usd_total, llm_requests_total, ...)",
            f"  {metrics_url}/api/budgets   budget status as JSON",
            f"  {metrics_url}/api/costs/top-users, /api/costs/daily-by-feature, /api/costs/by-model, ...",
            "                               exact spend from the ledger as JSON (the list: /api/costs)",
            "  (all are served while the demo runs)",
        ]
    if ledger:
        lines += [
            f"  ledger: {ledger}  (kept after the demo)",
            f"  spendmeter report --ledger {ledger} --by user    (or --by feature, model, agent, day; "
            "--format csv)",
        ]
    lines += [
        "  With `docker compose up` (see docs/stack.md): Prometheus http://localhost:9090, "
        "Grafana http://localhost:3000,",
        "  Alertmanager http://localhost:9093; try  sum by (feature) (rate(llm_cost_usd_total[5m]))",
    ]
    if real:
        lines.append("  These calls went to the real providers and were billed to your keys.")
    lines.append("")
    return "\n".join(lines)


def _model_cost(m: ModelLine) -> str:
    if m.unpriced and not m.cost:
        return "unpriced"
    if not m.cost and not (m.input or m.cache_read or m.cache_write or m.output):
        return "-"  # only blocked or failed calls: nothing was billed
    return usd(m.cost)


def _top_keys(status: list[Any]) -> tuple[list[Any], int]:
    """Keep the first KEYS_PER_BUDGET rows of each budget (status() lists them highest spend first)."""
    seen: Counter[str] = Counter()
    shown = []
    for row in status:
        seen[row.name] += 1
        if seen[row.name] <= KEYS_PER_BUDGET:
            shown.append(row)
    return shown, len(status) - len(shown)


def _budget_state(status: Any) -> str:
    if status.utilization >= 1:
        return "BLOCKING" if status.action == "block" else "OVER"
    crossed = [w for w in status.warn_at if status.utilization >= w]
    return f"warn >= {max(crossed):.0%}" if crossed else "ok"
