"""Providers' own cost data, read into one shape: `ExportLine(day, provider, model, cost_usd)`.

- OpenAI organization Costs API (`GET /v1/organization/costs`, `bucket_width=1d`, `group_by=line_item`):
  pages `{"object": "page", "data": [buckets], "has_more", "next_page"}`, each bucket
  `{"object": "bucket", "start_time": unix seconds, "end_time", "results": [{"object":
  "organization.costs.result", "amount": {"value": 0.06, "currency": "usd"}, "line_item": "gpt-4o-mini,
  input", "project_id": ...}]}`. `amount.value` is in dollars (a JSON number: read as a Decimal, never a
  float). The model is the line item's text before its first comma; a line item without one (or none at
  all) stays unattributed to a model.
- Anthropic Admin API cost report (`GET /v1/organizations/cost_report`, grouped by description): `{"data":
  [{"starting_at": RFC 3339, "ending_at", "results": [{"amount": "123.45", "currency": "USD", "model",
  "cost_type", "token_type", "service_tier", "context_window", "workspace_id", "description"}]}],
  "has_more", "next_page"}`. The documented `amount` is a decimal string in the lowest currency unit,
  cents ("123.45" is $1.23), so it is divided by 100. The report excludes Priority Tier costs.
- CSV with a header `date,provider,model,cost_usd` (any other columns are ignored).

A bucket's day is the UTC date of its start; the ledger's days are UTC days too.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

CENTS = Decimal(100)


class ExportError(ValueError):
    """An export that is not in the documented format: the message names the file and the place."""


@dataclass(frozen=True, slots=True)
class ExportLine:
    day: date
    provider: str  # the ledger's provider id: openai, anthropic, ...
    model: str | None  # None: a cost the provider does not attribute to a model (tool fees, storage, ...)
    cost: Decimal  # USD
    detail: str = ""  # the line item / cost type, for the printout


def _load_json(path: str | Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"), parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: not JSON ({exc})") from None
    pages = doc if isinstance(doc, list) else [doc]
    if not all(isinstance(p, dict) and isinstance(p.get("data"), list) for p in pages):
        raise ExportError(f"{path}: expected a page object with a `data` list of buckets (or a list of pages)")
    return pages


def _decimal(value: Any, where: str) -> Decimal:
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ExportError(f"{where}: not a number: {value!r}") from None


def load_openai(path: str | Path) -> list[ExportLine]:
    out = []
    for p, page in enumerate(_load_json(path)):
        for b, bucket in enumerate(page["data"]):
            where = f"{path}: page {p} bucket {b}"
            if "start_time" not in bucket:
                raise ExportError(f"{where}: no start_time (an OpenAI Costs API bucket has one)")
            day = datetime.fromtimestamp(int(bucket["start_time"]), UTC).date()
            for r, result in enumerate(bucket.get("results") or []):
                amount = result.get("amount") or {}
                currency = str(amount.get("currency", "usd")).lower()
                if currency != "usd":
                    raise ExportError(f"{where} result {r}: currency {currency!r}; only USD is compared")
                item = result.get("line_item")
                model = item.split(",", 1)[0].strip().lower() if item and "," in item else None
                out.append(ExportLine(day, "openai", model, _decimal(amount.get("value", 0), f"{where} result {r}"),
                                      str(item or "(no line item)")))
    return out


def load_anthropic(path: str | Path) -> list[ExportLine]:
    out = []
    for p, page in enumerate(_load_json(path)):
        for b, bucket in enumerate(page["data"]):
            where = f"{path}: page {p} bucket {b}"
            try:
                start = datetime.fromisoformat(str(bucket["starting_at"]).replace("Z", "+00:00"))
            except (KeyError, ValueError):
                raise ExportError(f"{where}: no RFC 3339 starting_at (as in an Anthropic cost report)") from None
            day = start.astimezone(UTC).date()
            for r, result in enumerate(bucket.get("results") or []):
                currency = str(result.get("currency", "USD")).upper()
                if currency != "USD":
                    raise ExportError(f"{where} result {r}: currency {currency!r}; only USD is compared")
                cents = _decimal(result.get("amount", "0"), f"{where} result {r}")
                model = result.get("model")
                detail = " ".join(str(result[k]) for k in ("cost_type", "token_type", "service_tier") if result.get(k))
                out.append(ExportLine(day, "anthropic", str(model).lower() if model else None, cents / CENTS, detail))
    return out


def load_csv(path: str | Path) -> list[ExportLine]:
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"date", "provider", "model", "cost_usd"} - set(reader.fieldnames or ())
        if missing:
            raise ExportError(f"{path}: the header lacks {', '.join(sorted(missing))} (expected "
                              "date,provider,model,cost_usd)")
        for n, row in enumerate(reader, start=2):
            try:
                day = date.fromisoformat(row["date"].strip()[:10])
            except ValueError:
                raise ExportError(f"{path}:{n}: date {row['date']!r} is not YYYY-MM-DD") from None
            model = row["model"].strip().lower() or None
            out.append(ExportLine(day, row["provider"].strip().lower(), model,
                                  _decimal(row["cost_usd"].strip(), f"{path}:{n}"), "csv"))
    return out


def load_exports(*, openai: list[str], anthropic: list[str], csv_files: list[str]) -> list[ExportLine]:
    lines = [*(x for f in openai for x in load_openai(f)), *(x for f in anthropic for x in load_anthropic(f)),
             *(x for f in csv_files for x in load_csv(f))]
    if not (openai or anthropic or csv_files):
        raise ExportError("give at least one export: --openai FILE, --anthropic FILE or --csv FILE")
    return lines
