"""The cost API by tag (`attribute(team=..., tenant=...)`), beside the other `/api/costs` routes:

    /api/costs/tags                      the tag names the ledger's calls carry (in the window)
    /api/costs/by-tag?name=team          spend, tokens and calls per value of one tag (`unknown`: calls without it)

Same window (`from`, `to`, `days`), filters, `limit`, JSON shape and errors as server/api.py.
"""

from __future__ import annotations

from typing import Any

from spendmeter.analytics import tags, views
from spendmeter.analytics.periods import BadInput
from spendmeter.server.api import MAX_LIMIT, PREFIX, WINDOW_PARAMS, QueryParams, accepts, json_route, ledger_source
from spendmeter.server.routes import ROUTES


def _by_tag(p: QueryParams) -> dict[str, Any]:
    name = p.get("name")
    if not name:
        raise BadInput("name: which tag to group by, e.g. name=team (/api/costs/tags lists them)")
    try:
        tags.check_tag_name(name)
    except ValueError as exc:
        raise BadInput(f"name: {exc}") from None
    w, filters = p.window(), p.filters()
    rows = tags.by_tag(ledger_source(), name, w, filters, limit=p.limit(100))
    return {**views.window_json(w), "tag": name, "filters": filters, "currency": "USD",
            "rows": [views.group_json(g) for g in rows]}


def _names(p: QueryParams) -> dict[str, Any]:
    w = p.window()
    return {**views.window_json(w), "tags": tags.tag_names(ledger_source(), w)}


TAG_ROUTES = {
    f"{PREFIX}/by-tag": json_route(accepts("name", "limit"), _by_tag),
    f"{PREFIX}/tags": json_route(WINDOW_PARAMS, _names),
}


def register() -> None:
    ROUTES.update(TAG_ROUTES)


register()
__all__ = ["MAX_LIMIT", "TAG_ROUTES", "register"]
