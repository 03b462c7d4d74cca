"""Inline SVG charts for the /costs page and `spendmeter report --html`: drawn on the server, so the page
needs no script and fetches nothing. Every bar carries a <title> (the browser's tooltip) with its exact value."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape

# Colour-blind-safe palette (Okabe–Ito), then greys for the rest.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
STATE_COLOURS = {"ok": "#009E73", "warning": "#E69F00", "exhausted": "#D55E00"}
Fmt = Callable[[float], str]


def colour(i: int) -> str:
    return PALETTE[i] if i < len(PALETTE) else "#999999"


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above `value` (an axis that ends on a round number)."""
    if value <= 0:
        return 1.0
    scale = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    while scale > value:
        scale /= 10
    for step in (1, 2, 5, 10):
        if step * scale >= value:
            return step * scale
    return 10 * scale


def _svg(title: str, width: int, height: int) -> str:
    """Scales with its container (width 100 %), keeping its proportions; never wider than drawn."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" width="100%" '
            f'style="max-width:{width}px" viewBox="0 0 {width} {height}" class="chart">')


def stacked_bars(categories: Sequence[str], series: Mapping[str, Sequence[float]], fmt: Fmt, *,
                 title: str, width: int = 760, height: int = 260) -> str:
    """One bar per category (a day), stacked by series (a feature), with a y axis and a legend."""
    left, right, top, bottom = 64, 150, 12, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(values[i] for values in series.values()) for i in range(len(categories))]
    ymax = _nice_max(max(totals, default=0.0))
    n = max(len(categories), 1)
    slot = plot_w / n
    bar = max(min(slot * 0.7, 48), 2)
    parts = [_svg(title, width, height)]
    for k in range(5):
        value = ymax * k / 4
        y = top + plot_h - plot_h * k / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{escape(fmt(value))}</text>')
    for i, category in enumerate(categories):
        x = left + slot * i + (slot - bar) / 2
        y = top + plot_h
        for j, (name, values) in enumerate(series.items()):
            h = plot_h * values[i] / ymax
            if h <= 0:
                continue
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour(j)}">'
                         f'<title>{escape(category)} · {escape(name)}: {escape(fmt(values[i]))}</title></rect>')
        if n <= 16 or i % max(n // 8, 1) == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                         f'class="axis">{escape(category[5:] if len(category) == 10 else category)}</text>')
    for j, name in enumerate(series):
        y = top + 8 + 18 * j
        parts.append(f'<rect x="{left + plot_w + 14}" y="{y - 9}" width="11" height="11" fill="{colour(j)}"/>'
                     f'<text x="{left + plot_w + 30}" y="{y}" class="legend">{escape(name)}</text>')
    if not categories:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle">no calls</text>')
    parts.append("</svg>")
    return "".join(parts)


def hbars(rows: Sequence[tuple[str, float]], fmt: Fmt, *, title: str, width: int = 560,
          colours: Sequence[str] | None = None, max_value: float | None = None,
          marks: Sequence[float] = (), label_width: int = 170) -> str:
    """A horizontal bar per row (label, value); a value past `max_value` fills the bar (its label says how
    far past); `marks` draws vertical lines at values (e.g. 100 % of a budget)."""
    label_w, value_w, row_h = label_width, 90, 24
    max_chars = max(label_w // 7, 8)
    plot_w = width - label_w - value_w
    height = max(row_h * len(rows), row_h) + 8
    vmax = max_value if max_value is not None else max((v for _, v in rows), default=0.0)
    vmax = vmax if vmax > 0 else 1.0
    parts = [_svg(title, width, height)]
    for i, (label, value) in enumerate(rows):
        y = 4 + row_h * i
        w = plot_w * min(max(value, 0.0), vmax) / vmax
        fill = colours[i] if colours else PALETTE[0]
        shown = label if len(label) <= max_chars else label[: max_chars - 1] + "…"
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" class="label">{escape(shown)}'
                     f'<title>{escape(label)}</title></text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{fill}">'
                     f'<title>{escape(label)}: {escape(fmt(value))}</title></rect>')
        parts.append(f'<text x="{label_w + plot_w + 6}" y="{y + 15}" class="value">{escape(fmt(value))}</text>')
    for mark in marks:
        x = label_w + plot_w * mark / vmax
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}" class="mark"/>')
    if not rows:
        parts.append(f'<text x="{label_w}" y="18">none</text>')
    parts.append("</svg>")
    return "".join(parts)
