"""The panel kinds our dashboards use, as grafana-foundation-sdk builders (typed, maintained by Grafana), with
spendmeter's defaults: every query through the `${datasource}` variable, units, thresholds, legends.

A dashboard module lists its panels as builders and hands them to `dashboard()`, which lays them out left to
right (wrapping at the grid width; a row is as tall as its tallest panel), numbers them and their queries,
and returns the JSON Grafana loads. Provisioning selects the Prometheus datasource with uid `prometheus`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import bargauge, common, piechart, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import piechart as pm
from grafana_foundation_sdk.models import prometheus as pq

DATASOURCE_VAR = "datasource"
DS = dm.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VAR}}}")
PROVISIONED_DATASOURCE_UID = "prometheus"
GRID_WIDTH = 24
USD = "currencyUSD"
Steps = Sequence[tuple[float | None, str]]
GREEN: Steps = ((None, "green"),)
WARN: Steps = ((None, "green"), (0.8, "orange"), (1.0, "red"))
PanelBuilder = Any  # the SDK's panel builders share a shape, not a base class with these methods


def query(expr: str, legend: str = "__auto", *, instant: bool = False, table_format: bool = False) -> prom.Dataquery:
    q = prom.Dataquery().expr(expr).legend_format(legend).datasource(DS).editor_mode(pq.QueryEditorMode.CODE)
    q = q.instant() if instant else q.range()
    if table_format:  # table panels that merge several instant queries
        q = q.format(pq.PromQueryFormat.TABLE)
    return q


def _thresholds(steps: Steps) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(color=colour, value=value) for value, colour in steps])


def _common(panel: PanelBuilder, title: str, targets: Sequence[prom.Dataquery], *, width: int, height: int,
            unit: str, description: str, colour: dm.FieldColorModeId, steps: Steps, decimals: int | None,
            min_value: float | None, max_value: float | None, time_from: str | None, interval: str | None,
            transformations: Sequence[dm.DataTransformerConfig], overrides: Sequence[tuple[str, dict[str, Any]]],
            ) -> PanelBuilder:
    panel = (panel.title(title).description(description).datasource(DS).span(width).height(height).unit(unit)
             .color_scheme(db.FieldColor().mode(colour)).thresholds(_thresholds(steps)))
    for i, target in enumerate(targets):
        panel = panel.with_target(target.ref_id(chr(ord("A") + i)))
    for name, value in (("decimals", decimals), ("min", min_value), ("max", max_value),
                        ("time_from", time_from), ("interval", interval)):
        if value is not None:
            panel = getattr(panel, name)(value)
    for transformation in transformations:
        panel = panel.with_transformation(transformation)
    for field_name, properties in overrides:
        panel = panel.override_by_name(field_name, [dm.DynamicConfigValue(id_val=k, value=v)
                                                    for k, v in properties.items()])
    return panel


def _options(**kw: Any) -> dict[str, Any]:
    """The arguments every panel kind shares, with their defaults."""
    defaults: dict[str, Any] = {"width": 12, "height": 8, "unit": "short", "description": "", "steps": GREEN,
                                "decimals": None, "min_value": None, "max_value": None, "time_from": None,
                                "interval": None, "transformations": (), "overrides": ()}
    return {**defaults, **kw}


def _reduce() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


def timeseries_panel(title: str, targets: Sequence[prom.Dataquery], *, stacked: bool = False, bars: bool = False,
                     legend_bottom: bool = False, **kw: Any) -> timeseries.Panel:
    legend = (common.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE).show_legend(True)
              .placement(cm.LegendPlacement.BOTTOM if legend_bottom else cm.LegendPlacement.RIGHT)
              .calcs(["lastNotNull"] if legend_bottom else ["lastNotNull", "max"]))
    panel = (timeseries.Panel().draw_style(cm.GraphDrawStyle.BARS if bars else cm.GraphDrawStyle.LINE)
             .fill_opacity(80 if bars else 10).line_width(1).show_points(cm.VisibilityMode.NEVER)
             .stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL if stacked else cm.StackingMode.NONE)
                       .group("A"))
             .legend(legend).tooltip(common.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI)
                                     .sort(cm.SortOrder.DESCENDING)))
    return _common(panel, title, targets, colour=dm.FieldColorModeId.PALETTE_CLASSIC, **_options(**kw))


def stat_panel(title: str, targets: Sequence[prom.Dataquery], *, with_names: bool = False, **kw: Any) -> stat.Panel:
    panel = (stat.Panel().reduce_options(_reduce()).color_mode(cm.BigValueColorMode.VALUE)
             .graph_mode(cm.BigValueGraphMode.NONE).justify_mode(cm.BigValueJustifyMode.AUTO)
             .orientation(cm.VizOrientation.AUTO)
             .text_mode(cm.BigValueTextMode.VALUE_AND_NAME if with_names else cm.BigValueTextMode.AUTO))
    return _common(panel, title, targets, colour=dm.FieldColorModeId.THRESHOLDS, **_options(**kw))


def bargauge_panel(title: str, targets: Sequence[prom.Dataquery], *, basic: bool = False,
                   **kw: Any) -> bargauge.Panel:
    panel = (bargauge.Panel().reduce_options(_reduce()).orientation(cm.VizOrientation.HORIZONTAL)
             .display_mode(cm.BarGaugeDisplayMode.BASIC if basic else cm.BarGaugeDisplayMode.GRADIENT)
             .show_unfilled(True).min_viz_height(16).max_viz_height(24))
    return _common(panel, title, targets, colour=dm.FieldColorModeId.THRESHOLDS, **_options(**kw))


def piechart_panel(title: str, targets: Sequence[prom.Dataquery], **kw: Any) -> piechart.Panel:
    legend = (piechart.PieChartLegendOptions().display_mode(cm.LegendDisplayMode.TABLE)
              .placement(cm.LegendPlacement.RIGHT).show_legend(True)
              .values([pm.PieChartLegendValues.VALUE, pm.PieChartLegendValues.PERCENT]))
    panel = piechart.Panel().reduce_options(_reduce()).pie_type(pm.PieChartType.DONUT).legend(legend)
    return _common(panel, title, targets, colour=dm.FieldColorModeId.PALETTE_CLASSIC, **_options(**kw))


def table_panel(title: str, targets: Sequence[prom.Dataquery], **kw: Any) -> table.Panel:
    panel = table.Panel().show_header(True).cell_height(cm.TableCellHeight.SM)
    return _common(panel, title, targets, colour=dm.FieldColorModeId.PALETTE_CLASSIC, **_options(**kw))


def merge_table(renames: dict[str, str]) -> list[dm.DataTransformerConfig]:
    """Join several instant table queries on their labels and give the value columns readable names."""
    return [dm.DataTransformerConfig(id_val="merge", options={}),
            organize(renames)]


def organize(renames: dict[str, str]) -> dm.DataTransformerConfig:
    return dm.DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True},
                                                                "renameByName": renames})


def sort_by(field_name: str) -> dm.DataTransformerConfig:
    return dm.DataTransformerConfig(id_val="sortBy", options={"sort": [{"field": field_name, "desc": True}]})


# ------------------------------------------------------------------------------------------------ variables


def datasource_variable() -> db.DatasourceVariable:
    return (db.DatasourceVariable(DATASOURCE_VAR).label("Data source").type("prometheus")
            .current(dm.VariableOption(text="Prometheus", value=PROVISIONED_DATASOURCE_UID)).regex(""))


def label_variable(name: str, label: str, label_values: str, *, multi: bool = True,
                   include_all: bool = True) -> db.QueryVariable:
    """Values of a label (multi-select with All = `.*`), refreshed on every time range change, so new users
    and models appear without a reload."""
    var = (db.QueryVariable(name).label(label).datasource(DS).query(label_values).multi(multi)
           .include_all(include_all).all_value(".*").refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
           .sort(dm.VariableSort.ALPHABETICAL_ASC).regex(""))
    if include_all:
        all_option = (dm.VariableOption(text=["All"], value=["$__all"]) if multi
                      else dm.VariableOption(text="All", value="$__all"))
        var = var.current(all_option)
    return var


def textbox_variable(name: str, label: str, default: str, description: str) -> db.TextBoxVariable:
    return (db.TextBoxVariable(name).label(label).default_value(default).description(description)
            .current(dm.VariableOption(text=default, value=default)))


# ------------------------------------------------------------------------------------------------ dashboard


def _place(panels: Sequence[PanelBuilder]) -> None:
    """Left to right, wrapping before a panel that would overflow the grid; ids in order, from 1."""
    x = y = row_height = 0
    for panel_id, panel in enumerate(panels, start=1):
        built = panel.id(panel_id).build()
        pos = built.grid_pos
        if x + pos.w > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        pos.x, pos.y = x, y
        x += pos.w
        row_height = max(row_height, pos.h)


def dashboard(*, uid: str, title: str, description: str, variables: Sequence[Builder[dm.VariableModel]],
              panels: Sequence[PanelBuilder], time_from: str = "now-1h", refresh: str = "30s") -> dict[str, Any]:
    """The dashboard JSON (a dict, as committed under grafana/dashboards/)."""
    _place(panels)
    builder = (db.Dashboard(title).uid(uid).description(description).tags(["spendmeter", "llm", "cost"])
               .timezone("browser").editable().tooltip(dm.DashboardCursorSync.CROSSHAIR).time(time_from, "now")
               .refresh(refresh)
               .link(db.DashboardLink("spendmeter").type(dm.DashboardLinkType.DASHBOARDS).tags(["spendmeter"])
                     .as_dropdown(True).include_vars(False).keep_time(True)))
    for variable in variables:
        builder = builder.with_variable(variable)
    for panel in panels:
        builder = builder.with_panel(panel)
    out: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return out
