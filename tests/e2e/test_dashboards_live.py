"""`spendmeter demo` -> a real Prometheus (shipped config and rules) -> every query of every dashboard.

The demo runs as a subprocess (the real SDKs against its local fake provider, with a budgets file small
enough that within seconds a user is blocked, users pass a warn level and budgets are exhausted), a real
Prometheus scrapes it every second, and each panel query of grafana/dashboards/*.json, with the
variables set to All as Grafana sends them, must come back with data through /api/v1/query.

This Prometheus is the module's own, not the session one: other e2e tests feed the session Prometheus
hand-written series (alice, bob, ...) whose samples its [1h] and [1d] windows would still find, so a
panel could pass on their leftovers. Here the TSDB starts empty and every answer comes from the demo. It
is started from the same shipped files through servers.start_prometheus(); its alerts go nowhere (an
unused port), so the demo's alerts never reach the session webhook the other tests read.

The budgets run in a fixed-offset timezone in which it is about 02:00 when the module starts: the burn-rate
forecast multiplies the spend rate by the time left in the day, so with the day in UTC a run shortly before
midnight UTC has no forecast overshooting and no pending alert (the likely cause of one CI failure, in a
run made near midnight UTC).

Panels of the form `<query> or vector(0)` always return something, so for them the query before the
fallback is checked too; the few that are empty by design after a short healthy run are listed in
EXPECTED_FALLBACK_ONLY with the reason, and the test fails if that list is wrong either way.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import servers
import yaml

import spendmeter
from spendmeter.dashboards import (
    BUILTIN_SUBSTITUTIONS,
    all_panel_queries,
    iter_panels,
    load_all,
    variable_query,
    variables_used,
)
from spendmeter.dashboards._promql import increase
from spendmeter.demo.driver import DEMO_TEAMS

DASH_DIR = servers.REPO / "grafana" / "dashboards"
DATASOURCES_DIR = servers.REPO / "grafana" / "provisioning" / "datasources"
SRC = Path(spendmeter.__file__).resolve().parents[1]

DEMO_RATE = "30"  # user messages per second: every budget event happens within a few seconds
DEMO_SAFETY_DURATION = "150"  # the demo ends by itself even if this process dies before stopping it
DEMO_STOP_TIMEOUT_S = 20.0  # SIGINT: up to 5 s of draining in-flight messages, then the report
DATA_TIMEOUT_S = 45.0  # from the first scrape of the demo until every panel has data

# Small limits so that, at DEMO_RATE, within a few seconds: heavy-user is blocked (user daily, block),
# most regular users pass the user budget's lowest warn level (so their per-user gauges exist), the
# global daily budget passes its lowest warn level, the coding feature exhausts its feature budget
# (LLMBudgetExhausted), and the regular users stay below their daily limit while their forecasts
# overshoot it (LLMBudgetBurnRateForecast pending). The timezone line comes from early_in_the_day_zone().
BUDGETS = """\
store: memory
budgets:
  - {name: e2e-user-daily, scope: user, period: day, limit_usd: 1, warn_at: [0.02, 0.8], action: block}
  - {name: e2e-global-daily, scope: global, period: day, limit_usd: 20, warn_at: [0.05, 0.8]}
  - {name: e2e-global-monthly, scope: global, period: month, limit_usd: 1000, warn_at: [0.5]}
  - {name: e2e-feature-daily, scope: feature, period: day, limit_usd: 1, warn_at: [0.5]}
"""


def early_in_the_day_zone(now: datetime) -> str:
    """An `Etc/GMT±N` zone in which `now` falls between 02:00 and 03:00 local time.

    The daily budgets then have about 22 h left, whatever the hour in UTC: their forecasts overshoot within
    seconds of the demo starting and no day ends during the module. (`Etc/GMT-5` is UTC+5: POSIX signs.)
    """
    offset = 2 - now.astimezone(UTC).hour  # -21 .. +2 hours, then -12 .. +11
    if offset < -12:
        offset += 24  # Etc/GMT zones span UTC-12 .. UTC+14
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


FALLBACK = " or vector(0)"
# The query before `or vector(0)` -> why it has no data after a short, healthy demo run.
EXPECTED_FALLBACK_ONLY: dict[str, str] = {
    'count(ALERTS{alertname="LLMBudgetBurnRateForecast", alertstate="firing", budget=~".*"})':
        "the alert has `for: 15m` (prometheus/rules/alerts.yml): it is pending here, never firing",
    f"sum({increase('spendmeter_internal_errors_total', '1h')})":
        "the counter's series appear with the first contained internal error; a healthy run has none",
}


# --------------------------------------------------------------------------------------------- fixtures


@dataclass
class DemoStack:
    prometheus: servers.Prometheus
    demo: subprocess.Popen[bytes]
    demo_log: Path
    metrics_url: str

    def demo_output(self, chars: int = 3000) -> str:
        return self.demo_log.read_text(errors="replace")[-chars:]


@pytest.fixture(scope="module")
def stack(prometheus_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    workdir = tmp_path_factory.mktemp("dashboards-live")
    budgets = workdir / "budgets.yaml"
    budgets.write_text(f"timezone: {early_in_the_day_zone(datetime.now(UTC))}\n" + BUDGETS)
    port = servers.free_port()
    demo_log = workdir / "demo.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
           "SPENDMETER_LABEL_TAGS": "team"}  # the demo's `team` tag as a label: the "Spend by tag" panels
    with open(demo_log, "wb") as log:  # the child keeps its own descriptor
        demo = subprocess.Popen(
            [sys.executable, "-m", "spendmeter.cli", "demo", "--port", str(port), "--rate", DEMO_RATE,
             "--budgets", str(budgets), "--duration", DEMO_SAFETY_DURATION],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
    prom: servers.Prometheus | None = None
    stopped = False
    try:
        # Prometheus starts while the demo imports the SDKs; its first scrapes may fail, that is fine.
        prom = servers.start_prometheus(
            prometheus_bin, workdir / "prometheus",
            {"spendmeter": f"127.0.0.1:{port}", "alertmanager": f"127.0.0.1:{servers.free_port()}"},
        )
        stack = DemoStack(prom, demo, demo_log, f"http://127.0.0.1:{port}/metrics")

        def demo_up() -> bool:
            if demo.poll() is not None:
                raise RuntimeError(f"the demo exited with {demo.returncode}:\n{stack.demo_output()}")
            return bool(prom.query('up{job="spendmeter"} == 1'))

        _wait(demo_up, 30.0, lambda: f"Prometheus never scraped the demo:\n{stack.demo_output()}")
        yield stack
        stopped = True
        rc = _stop_demo(demo)
        assert rc == 0, f"the demo exited with {rc} after SIGINT:\n{stack.demo_output()}"
        assert "spendmeter demo report" in demo_log.read_text(errors="replace"), stack.demo_output()
    finally:
        if not stopped:
            _stop_demo(demo)
        if prom is not None:
            prom.stop()


def _stop_demo(demo: subprocess.Popen[bytes]) -> int:
    if demo.poll() is None:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=DEMO_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(timeout=5)
    return int(demo.returncode)


def _wait(check: Callable[[], bool], timeout: float, describe: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (urllib.error.URLError, OSError):
            pass  # not up yet
        if time.monotonic() > deadline:
            raise AssertionError(describe())
        time.sleep(0.5)


# ----------------------------------------------------------------------------------------------- queries


def run_query(prom: servers.Prometheus, expr: str) -> tuple[bool, str]:
    """(has data, what came back): a vector with at least one sample, or a scalar, counts as data."""
    url = prom.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        reply = json.loads(servers.http_get(url))
    except urllib.error.HTTPError as exc:  # 400 on a bad query: the body says why
        return False, f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:300]}"
    except (urllib.error.URLError, OSError) as exc:
        return False, repr(exc)
    if reply.get("status") != "success":
        return False, f"{reply.get('errorType')}: {reply.get('error')}"
    kind, result = reply["data"]["resultType"], reply["data"]["result"]
    if kind == "scalar":
        return True, f"scalar {result[1]}"
    return bool(result), f"{kind} of {len(result)} series"


def poll_until_empty(find_problems: Callable[[], list[str]], timeout: float = DATA_TIMEOUT_S) -> list[str]:
    """Call `find_problems` every second until it finds none or `timeout` passes; the last problems."""
    deadline = time.monotonic() + timeout
    while True:
        problems = find_problems()
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(1.0)


def test_every_panel_query_returns_data(stack: DemoStack) -> None:
    queries = all_panel_queries(DASH_DIR)
    assert len(queries) >= 40, "fewer panel queries than the dashboards hold: is grafana/dashboards complete?"

    def empty_panels() -> list[str]:
        problems = []
        for uid, title, expr in queries:
            ok, got = run_query(stack.prometheus, expr)
            if not ok:
                problems.append(f"- {uid} / {title}: {got}\n    {expr}")
        return problems

    started = time.monotonic()
    problems = poll_until_empty(empty_panels)
    assert not problems, (
        f"{len(problems)} of {len(queries)} panel queries returned no data after "
        f"{time.monotonic() - started:.0f} s of the demo being scraped every second:\n" + "\n".join(problems)
    )


def test_fallback_panels_show_demo_data_not_just_their_zero(stack: DemoStack) -> None:
    """For `<query> or vector(0)`, <query> itself has data, except the documented EXPECTED_FALLBACK_ONLY."""
    panels: dict[str, list[str]] = {}  # the query before the fallback -> "uid / title" of its panels
    for uid, title, expr in all_panel_queries(DASH_DIR):
        if expr.endswith(FALLBACK):
            panels.setdefault(expr.removesuffix(FALLBACK), []).append(f"{uid} / {title}")
    lefts = sorted(panels)
    assert set(EXPECTED_FALLBACK_ONLY) <= set(lefts), "EXPECTED_FALLBACK_ONLY names a query no panel has"

    def without_data() -> list[str]:
        return [expr for expr in lefts if not run_query(stack.prometheus, expr)[0]]

    # Wait only for the panels that should fill; the expected-empty ones never will.
    poll_until_empty(lambda: [e for e in without_data() if e not in EXPECTED_FALLBACK_ONLY])
    empty = without_data()
    unexpected = [e for e in empty if e not in EXPECTED_FALLBACK_ONLY]
    filled = [e for e in EXPECTED_FALLBACK_ONLY if e not in empty]
    assert not unexpected, (
        "these panels showed only their `or vector(0)` fallback, the demo's data never reached them:\n"
        + "\n".join(f"- {', '.join(panels[e])}:\n    {e}" for e in unexpected)
    )
    assert not filled, (
        "listed in EXPECTED_FALLBACK_ONLY but returned data (an internal error in the demo? a rule change?):\n"
        + "\n".join(f"- {', '.join(panels[e])}: {run_query(stack.prometheus, e)[1]}\n    {e}" for e in filled)
    )


_LABEL_VALUES = re.compile(r"label_values\((?P<selector>.+),\s*(?P<label>\w+)\)")


def test_variable_pickers_list_the_demo_values(stack: DemoStack) -> None:
    """Each dashboard's query variables (user, model, budget, ...) have values to pick from."""
    problems = []
    for dash in load_all(DASH_DIR).values():
        for var in dash["templating"]["list"]:
            if var["type"] != "query":
                continue
            definition = variable_query(var)
            match = _LABEL_VALUES.fullmatch(definition)
            assert match, f"{dash['uid']}: ${var['name']} is not label_values(...): {definition}"
            # The selector may refer to another variable (model filters on $provider): All, as the panels.
            selector = re.sub(r'"\$\{?\w+\}?"', '".*"', match["selector"])
            label = match["label"]
            url = (stack.prometheus.url + f"/api/v1/label/{label}/values?"
                   + urllib.parse.urlencode({"match[]": selector}))
            values = json.loads(servers.http_get(url))["data"]
            if not values:
                problems.append(f"- {dash['uid']}: ${var['name']} ({definition}) lists nothing")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------ static cross-check


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    """(key, value) of every mapping entry, however deep."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def test_dashboards_use_only_the_provisioned_datasource_and_defined_variables() -> None:
    provisioned = [ds for path in sorted(DATASOURCES_DIR.glob("*.y*ml"))
                   for ds in yaml.safe_load(path.read_text()).get("datasources") or []]
    prometheus_uids = {d["uid"] for d in provisioned if d["type"] == "prometheus"}
    assert prometheus_uids, f"no Prometheus datasource in {DATASOURCES_DIR}"
    for dash in load_all(DASH_DIR).values():
        uid = dash["uid"]
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        ds_vars = [v for v in variables.values() if v["type"] == "datasource"]
        assert len(ds_vars) == 1, f"{uid}: expected one datasource variable"
        ds_var = ds_vars[0]
        assert ds_var["query"] == "prometheus" and ds_var["current"]["value"] in prometheus_uids, (
            f"{uid}: the datasource variable defaults to {ds_var['current']}, not a provisioned Prometheus "
            f"{sorted(prometheus_uids)}")
        allowed = prometheus_uids | {f"${{{ds_var['name']}}}", f"${ds_var['name']}"}
        refs = [value for key, value in _walk(dash) if key == "datasource"]
        assert refs, f"{uid}: no datasource references at all"
        for ref in refs:
            assert isinstance(ref, dict) and ref.get("uid") in allowed, f"{uid}: datasource {ref!r}"
        defined = set(variables) | set(BUILTIN_SUBSTITUTIONS) | {"__all"}
        texts = [t["expr"] for p in iter_panels(dash) for t in p.get("targets", [])]
        texts += [p.get("title", "") for p in iter_panels(dash)]
        texts += [variable_query(v) for v in variables.values()]
        for text in texts:
            assert variables_used(text) <= defined, f"{uid}: {variables_used(text) - defined} in {text}"


# ---------------------------------------------------------------------------------------------- the numbers


def query_at(prom: servers.Prometheus, expr: str, at: float) -> dict[tuple[tuple[str, str], ...], float]:
    """An instant query evaluated at `at`: labels (sorted pairs) -> value."""
    url = prom.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    reply = json.loads(servers.http_get(url))
    assert reply["status"] == "success", reply
    return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in reply["data"]["result"]}


def panel_expr(uid: str, title: str) -> str:
    (expr,) = [e for u, t, e in all_panel_queries(DASH_DIR) if (u, t) == (uid, title)]
    return expr


@pytest.mark.parametrize(("title", "by"), [
    ("Spend today", ""), ("Top users", "user"), ("Spend by provider and model", "provider, model"),
    ("Spend by tag (team)", "team"),
])
def test_spend_panels_count_every_series_first_spend(stack: DemoStack, title: str, by: str) -> None:
    """Prometheus' TSDB began empty during this demo, so over a window longer than the demo every dollar the
    counters hold was spent inside it: each spend panel must equal the counters' own sum. A plain increase()
    reads a series' first sample as 0 (it needs two) and would come up short."""
    grouping = f" by ({by})" if by else ""
    expr = panel_expr("spendmeter-overview", title.replace("(team)", "($tag)") if "tag" in title else title)
    truth_expr = f"sum{grouping} (llm_cost_usd_total)"

    def differences() -> list[str]:
        at = time.time() - 2  # a moment every sample of which is already in
        got, truth = query_at(stack.prometheus, expr, at), query_at(stack.prometheus, truth_expr, at)
        if not truth:
            return ["no spend yet"]
        if expr.startswith("topk(10,"):  # the ten highest spenders, each with its whole spend
            top = sorted(truth, key=lambda k: -truth[k])[:10]
            if sorted(got.values()) != sorted(truth[k] for k in top):
                return [f"top 10 {sorted(got.values())} != {sorted(truth[k] for k in top)}"]
            truth = {k: truth[k] for k in got}
        problems = [f"{dict(k)}: panel {got.get(k)} != counters {v}" for k, v in truth.items()
                    if got.get(k) is None or abs(got[k] - v) > 1e-9 * max(1.0, v)]
        return problems + [f"{dict(k)}: only on the panel" for k in got.keys() - truth.keys()]

    problems = poll_until_empty(differences)
    assert not problems, "\n".join(problems)
    if by == "team":
        teams = {dict(k).get("team") for k in query_at(stack.prometheus, truth_expr, time.time())}
        assert teams >= set(DEMO_TEAMS), teams  # the tag label is exported and shown
