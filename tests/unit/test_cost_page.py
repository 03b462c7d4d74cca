"""The cost page's pieces that need no browser: budget states, chart SVG, the route's refusals."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from spendmeter.server import charts, page
from spendmeter.server.routes import ROUTES


def row(utilization: float, warn_at: tuple[float, ...] = (0.5, 0.8)) -> page.BudgetRow:
    return page.BudgetRow("b", "global", "all", "day", Decimal("1"), Decimal("2"), utilization, "alert", warn_at)


@pytest.mark.parametrize(("utilization", "warn_at", "state"), [
    (0.0, (0.5,), "ok"), (0.49, (0.5, 0.8), "ok"), (0.5, (0.8, 0.5), "warning"), (0.99, (0.5,), "warning"),
    (1.0, (0.5,), "exhausted"), (7.5, (), "exhausted"), (0.9, (), "ok"),
])
def test_budget_state(utilization: float, warn_at: tuple[float, ...], state: str) -> None:
    assert row(utilization, warn_at).state == state


def test_charts_are_inline_svg_with_exact_tooltips() -> None:
    svg = charts.stacked_bars(["2026-01-01", "2026-01-02"], {"support": [1.5, 0.0], "<coding>": [0.25, 2.0]},
                              page.usd, title="t")
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "href" not in svg
    assert "2026-01-01 · support: $1.50" in svg and "&lt;coding&gt;" in svg and "<coding>" not in svg
    assert len(re.findall(r"<rect [^>]*height=", svg)) == 3 + 2  # three non-zero bars, two legend swatches
    bars = charts.hbars([("a", 3.0), ("b", 0.0)], page.usd, title="t", max_value=2.0, marks=(1.0,))
    widths = [float(w) for w in re.findall(r'<rect x="\d+" y="[\d.]+" width="([\d.]+)"', bars)]
    assert widths[0] == pytest.approx(560 - 170 - 90) and widths[1] == 0  # past the maximum: a full bar


@pytest.mark.parametrize(("value", "text"), [(0, "$0"), (0.5, "$0.5"), (0.054, "$0.054"), (1.5, "$1.50"),
                                             (1234.4, "$1,234"), (0.00001, "$1.0e-05")])
def test_usd_labels(value: float, text: str) -> None:
    assert page.usd(value) == text


def test_the_page_is_registered_and_refuses_bad_parameters() -> None:
    assert ROUTES[page.PATH] is page.respond
    for query in ({"days": ["0"]}, {"days": ["x"]}, {"limit": ["100000"]}, {"days": [str(page.MAX_DAYS + 1)]}):
        assert page.respond(query).status == 400, query


def test_without_a_ledger_the_page_says_how_to_enable_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from spendmeter.runtime.pipeline import Pipeline
    from spendmeter.server import api

    bare = Pipeline()  # what runs before init(), or an init() without a ledger
    monkeypatch.setattr(api, "current", lambda: bare)
    monkeypatch.setattr(page, "current", lambda: bare)
    reply = page.respond({})
    assert reply.status == 503 and reply.content_type.startswith("text/html")
    assert b"SPENDMETER_LEDGER" in reply.body
    assert ("Content-Security-Policy", page.CSP) in reply.headers
