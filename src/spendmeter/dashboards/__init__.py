"""Grafana dashboards for spendmeter, generated from code and committed as JSON under grafana/dashboards/.

The code builds them with grafana-foundation-sdk (Grafana's typed builders; the `dashboards` extra):
`_panels.py` holds our panel kinds, `overview.py`, `user.py` and `budgets.py` the dashboards.

    python -m spendmeter.dashboards            # rewrite grafana/dashboards/*.json from this code
    python -m spendmeter.dashboards --check    # exit 1 if the committed JSON differs from the code

`panel_queries()` lists every panel query with template variables substituted, so a test can run them all
against a real Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from spendmeter.dashboards import budgets, overview, user

# file name -> builder; the file names are what Grafana's provisioning folder holds.
DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "overview.json": overview.build,
    "user.json": user.build,
    "budgets.json": budgets.build,
}

# What Grafana puts in for its built-in interval variables; a test uses these to run queries outside Grafana.
BUILTIN_SUBSTITUTIONS = {"__rate_interval": "1m", "__range": "1h", "__interval": "1m"}

# $name, ${name}, ${name:format} and the deprecated [[name]]
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")


def render(build: Callable[[], dict[str, Any]]) -> str:
    """The exact text committed for one dashboard: stable key order, trailing newline."""
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def variables_used(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in _VARIABLE.finditer(text)}


def iter_panels(dashboard_json: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in dashboard_json.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def default_substitutions(dashboard_json: Mapping[str, Any]) -> dict[str, str]:
    """Every query variable as All (`.*`), a text box as its default, Grafana's interval variables as
    BUILTIN_SUBSTITUTIONS."""
    subs = dict(BUILTIN_SUBSTITUTIONS)
    for var in dashboard_json.get("templating", {}).get("list", []):
        subs[var["name"]] = str(var.get("query", "")) if var.get("type") in ("textbox", "constant") else ".*"
    return subs


def variable_query(var: Mapping[str, Any]) -> str:
    """A query variable's `label_values(...)` text, whether Grafana stored it as a string or an object."""
    query = var.get("query", "")
    if isinstance(query, Mapping):
        return str(query.get("query", ""))
    return str(var.get("definition") or query)


def panel_queries(
    dashboard_json: Mapping[str, Any], substitutions: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every panel target, with `$variables` replaced.

    `substitutions` maps a variable name without `$` to its value (e.g. {"user": ".*", "__range": "1h"});
    None means `default_substitutions(dashboard_json)`. A variable left without a value raises ValueError,
    so a caller never sends Prometheus a query that still holds a `$`.
    """
    subs = default_substitutions(dashboard_json) if substitutions is None else dict(substitutions)

    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name not in subs:
            raise ValueError(f"no value for ${name}")
        return subs[name]

    out: list[tuple[str, str]] = []
    for panel in iter_panels(dashboard_json):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr and not target.get("hide"):
                out.append((panel.get("title", ""), _VARIABLE.sub(replace, expr)))
    return out


def load_all(directory: Path) -> dict[str, dict[str, Any]]:
    """file name -> parsed dashboard, for every *.json in `directory`."""
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))}


def all_panel_queries(directory: Path) -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL) for every committed dashboard, variables as All."""
    return [
        (dash["uid"], title, expr)
        for dash in load_all(directory).values()
        for title, expr in panel_queries(dash)
    ]


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in DASHBOARDS.items():
        path = directory / name
        path.write_text(render(build), encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path) -> list[str]:
    """Names of dashboards whose committed JSON differs from the code (or is missing, or is extra)."""
    problems = []
    for name, build in DASHBOARDS.items():
        path = directory / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif path.read_text(encoding="utf-8") != render(build):
            problems.append(f"{name}: differs from the code")
    problems += [f"{p.name}: not generated by spendmeter.dashboards" for p in directory.glob("*.json")
                 if p.name not in DASHBOARDS]
    return problems
