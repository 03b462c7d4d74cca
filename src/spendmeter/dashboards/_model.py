"""Small builders for Grafana dashboard JSON: just enough of the model for our three dashboards.

Every panel queries the datasource through the `${datasource}` template variable, so a dashboard
imported by hand can be pointed at any Prometheus; provisioning selects the one with uid `prometheus`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 39
DATASOURCE_VAR = "datasource"
DATASOURCE_REF = {"type": "prometheus", "uid": f"${{{DATASOURCE_VAR}}}"}
PROVISIONED_DATASOURCE_UID = "prometheus"
GRID_WIDTH = 24


@dataclass
class Target:
    expr: str
    legend: str = "__auto"
    instant: bool = False
    table: bool = False  # format=table, for table panels that merge several queries

    def to_json(self, ref_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "datasource": dict(DATASOURCE_REF),
            "refId": ref_id,
            "expr": self.expr,
            "legendFormat": self.legend,
            "range": not self.instant,
            "instant": self.instant,
            "editorMode": "code",
        }
        if self.table:
            out["format"] = "table"
        return out


@dataclass
class Panel:
    title: str
    kind: str  # Grafana panel type: stat, timeseries, barchart, bargauge, table, piechart, text
    targets: list[Target]
    width: int = 12
    height: int = 8
    unit: str = "short"
    description: str = ""
    decimals: int | None = None
    stacked: bool = False
    bars: bool = False
    time_from: str | None = None  # panel-relative time, e.g. "now/d" = today so far
    interval: str | None = None  # minimum step, e.g. "1d" for one bar per day
    thresholds: list[tuple[float | None, str]] = field(default_factory=lambda: [(None, "green")])
    min: float | None = None
    max: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    transformations: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {
            "unit": self.unit,
            "color": {"mode": "thresholds" if self.kind in ("stat", "bargauge") else "palette-classic"},
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": color, "value": value} for value, color in self.thresholds],
            },
        }
        for key in ("decimals", "min", "max"):
            if getattr(self, key) is not None:
                defaults[key] = getattr(self, key)
        if self.kind == "timeseries":
            defaults["custom"] = {
                "drawStyle": "bars" if self.bars else "line",
                "fillOpacity": 80 if self.bars else 10,
                "lineWidth": 1,
                "showPoints": "never",
                "stacking": {"mode": "normal" if self.stacked else "none", "group": "A"},
            }
        panel: dict[str, Any] = {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": dict(DATASOURCE_REF),
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "fieldConfig": {"defaults": defaults, "overrides": self.overrides},
            "options": self._options(),
            "targets": [t.to_json(chr(ord("A") + i)) for i, t in enumerate(self.targets)],
        }
        if self.time_from:
            panel["timeFrom"] = self.time_from
        if self.interval:
            panel["interval"] = self.interval
        if self.transformations:
            panel["transformations"] = self.transformations
        return panel

    def _options(self) -> dict[str, Any]:
        base: dict[str, Any] = {}
        if self.kind == "timeseries":
            base = {
                "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        elif self.kind == "stat":
            base = {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value",
                "graphMode": "none",
                "textMode": "auto",
                "justifyMode": "auto",
                "orientation": "auto",
            }
        elif self.kind == "bargauge":
            base = {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "orientation": "horizontal",
                "displayMode": "gradient",
                "showUnfilled": True,
                "minVizHeight": 16,
                "maxVizHeight": 24,
            }
        elif self.kind == "piechart":
            base = {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "pieType": "donut",
                "legend": {"displayMode": "table", "placement": "right", "values": ["value", "percent"]},
            }
        elif self.kind == "table":
            base = {"showHeader": True, "cellHeight": "sm"}
        base.update(self.options)
        return base


def override(field_name: str, **properties: Any) -> dict[str, Any]:
    """A field override by display name, e.g. override("Utilization", unit="percentunit")."""
    return {
        "matcher": {"id": "byName", "options": field_name},
        "properties": [{"id": key.replace("__", "."), "value": value} for key, value in properties.items()],
    }


def merge_table(renames: dict[str, str]) -> list[dict[str, Any]]:
    """Join several instant table queries on their labels and give the value columns readable names."""
    return [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": renames}},
    ]


@dataclass
class Variable:
    """A query variable over label values (multi-select with All = `.*`), or the datasource picker."""

    name: str
    label: str
    query: str = ""  # label_values(...) for query variables
    multi: bool = True
    include_all: bool = True
    kind: str = "query"

    def to_json(self) -> dict[str, Any]:
        if self.kind == "datasource":
            return {
                "name": self.name,
                "label": self.label,
                "type": "datasource",
                "query": "prometheus",
                "current": {"text": "Prometheus", "value": PROVISIONED_DATASOURCE_UID},
                "hide": 0,
                "refresh": 1,
                "regex": "",
                "options": [],
            }
        current = (
            {"text": ["All"], "value": ["$__all"]} if self.multi else {"text": "All", "value": "$__all"}
        )
        return {
            "name": self.name,
            "label": self.label,
            "type": "query",
            "datasource": dict(DATASOURCE_REF),
            "definition": self.query,
            "query": {"query": self.query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "refresh": 2,  # on time range change: new users and models appear without a reload
            "multi": self.multi,
            "includeAll": self.include_all,
            "allValue": ".*",
            "current": current if self.include_all else {},
            "sort": 1,
            "hide": 0,
            "regex": "",
            "options": [],
        }


def datasource_variable() -> Variable:
    return Variable(name=DATASOURCE_VAR, label="Data source", kind="datasource")


def layout(panels: list[Panel]) -> list[dict[str, Any]]:
    """Place panels left to right, wrapping at the grid width; a row is as tall as its tallest panel."""
    out: list[dict[str, Any]] = []
    x = y = row_height = 0
    for panel_id, panel in enumerate(panels, start=1):
        if x + panel.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        out.append(panel.to_json(panel_id, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return out


def dashboard(
    *,
    uid: str,
    title: str,
    description: str,
    variables: list[Variable],
    panels: list[Panel],
    time_from: str = "now-1h",
    refresh: str = "30s",
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["spendmeter", "llm", "cost"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": time_from, "to": "now"},
        "refresh": refresh,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "tags": ["spendmeter"],
                "asDropdown": True,
                "title": "spendmeter",
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "templating": {"list": [v.to_json() for v in variables]},
        "panels": layout(panels),
    }
