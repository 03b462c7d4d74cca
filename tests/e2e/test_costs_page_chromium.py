"""The cost page in a real browser: headless Chromium (Debian's `chromium`) loads `/costs` from an instrumented
process (real SDKs, fake provider, SQLite ledger, budgets), and `spendmeter report --html FILE` from disk.

For each: the DOM as Chromium built it (`--dump-dom`) holds the features, users, models, budgets with their
state, and the exact totals of the calls spendmeter finished; the page asks for nothing from the network
(no script, no external reference, a Content-Security-Policy of `default-src 'none'`); and a screenshot
(`--screenshot`) is a real rendering: the chart colours are on it. Without chromium the test fails under
CI=true and skips otherwise (.ci/install-servers.sh installs it).
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import urllib.request
import zlib
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import servers

from spendmeter.analytics.views import money
from spendmeter.server import charts

APP = Path(__file__).with_name("costs_page_app.py")
SRC = servers.REPO / "src"
BUDGETS = """\
timezone: UTC
store: memory
budgets:
  - {name: page-global-daily, scope: global, period: day, limit_usd: 5, warn_at: [0.5, 0.8]}
  - {name: page-user-daily, scope: user, period: day, limit_usd: 0.05, warn_at: [0.5]}
  - {name: page-coding-monthly, scope: feature, period: month, limit_usd: 1000, warn_at: [0.8],
     match: {feature: [coding]}}
"""
WINDOW = "1280,2200"


@pytest.fixture(scope="module")
def chromium_bin() -> str:
    return servers.need_binary("chromium", "chromium-browser")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("costs-page")
    (work / "budgets.yaml").write_text(BUDGETS)
    port = servers.free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, str(APP), str(port), str(work / "ledger.db"), str(work / "budgets.yaml")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"the app exited before reporting its calls:\n{proc.stderr.read() if proc.stderr else ''}")
        info = json.loads(line)
        info.update(url=f"http://127.0.0.1:{port}", work=work, ledger=work / "ledger.db")
        yield info
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def chromium(binary: str, url: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
            "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={out / 'profile'}", f"--window-size={WINDOW}", *extra, url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"chromium failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done


def render_in_chromium(binary: str, url: str, out: Path) -> tuple[str, Path]:
    """(the DOM Chromium built, a PNG screenshot of the page)."""
    out.mkdir(parents=True, exist_ok=True)
    dom = chromium(binary, url, out, "--dump-dom").stdout
    png = out / "page.png"
    chromium(binary, url, out, f"--screenshot={png}")
    assert png.is_file() and png.stat().st_size > 10_000, "no screenshot"
    return dom, png


# -------------------------------------------------------------------------------------------- the checks


def text_of(dom: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)).replace("&amp;", "&")


def expected(info: dict[str, Any]) -> dict[str, Any]:
    def by(field: str) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for c in info["calls"]:
            out[c[field]] = out.get(c[field], Decimal(0)) + Decimal(c["cost"])
        return out

    return {"total": Decimal(info["total"]), "users": by("user"), "features": by("feature"), "models": by("model"),
            "calls": len(info["calls"])}


def check_page(dom: str, info: dict[str, Any]) -> None:
    want = expected(info)
    text = text_of(dom)
    assert "Spend per day by feature" in text and "Top users" in text and "Models" in text, text[:500]
    assert f"${money(want['total'])}" in text, (want["total"], text[:800])
    assert re.search(rf"Calls\s+{want['calls']}\b", text), text[:800]
    for kind in ("users", "features", "models"):
        for name, cost in want[kind].items():
            assert re.search(rf"{re.escape(name)}\s+\${re.escape(money(cost))}\b", text), (kind, name, money(cost))
    # budgets and their state: the user budget (0.05 USD a day) is exhausted for every user of the plan
    assert "page-global-daily" in text and "page-coding-monthly" in text, text
    rows = re.findall(r"<tr><td>(page-[\w-]+)</td><td>(\w+)</td><td>([^<]+)</td>.*?"
                      r'<span class="state (\w+)">', dom)
    states = {(name, key): state for name, _scope, key, state in rows}
    for user, cost in want["users"].items():
        assert states[("page-user-daily", user)] == ("exhausted" if cost >= Decimal("0.05") else
                                                    "warning" if cost >= Decimal("0.025") else "ok"), user
    global_util = want["total"] / 5
    assert states[("page-global-daily", "all")] == (
        "exhausted" if global_util >= 1 else "warning" if global_util >= Decimal("0.5") else "ok")
    assert ("page-coding-monthly", "coding") in states
    # nothing to fetch: no script, no external reference, a CSP that forbids fetching
    assert "<script" not in dom.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!#|data:)""", dom, re.I), "the page references a resource"
    assert "default-src 'none'" in dom


def png_pixels(path: Path) -> Counter[tuple[int, int, int]]:
    """The colour histogram of an 8-bit RGB/RGBA PNG (what Chromium writes), decoded with the standard library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = depth = colour_type = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour_type = struct.unpack(">IIBB", chunk[:10])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    assert depth == 8 and colour_type in (2, 6), (depth, colour_type)
    bpp = 4 if colour_type == 6 else 3
    raw, stride = zlib.decompress(idat), width * bpp
    prev, counts, i = bytearray(stride), Counter[tuple[int, int, int]](), 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        counts.update(zip(line[0::bpp], line[1::bpp], line[2::bpp], strict=True))
        prev = line
    return counts


def check_screenshot(png: Path, n_features: int) -> None:
    pixels = png_pixels(png)
    for j in range(n_features):  # every feature's bars (and legend swatch) are drawn in its colour
        rgb = tuple(int(charts.colour(j)[k:k + 2], 16) for k in (1, 3, 5))
        assert pixels[rgb] > 100, f"feature colour {charts.colour(j)} is not on the screenshot"
    exhausted = tuple(int(charts.STATE_COLOURS["exhausted"][k:k + 2], 16) for k in (1, 3, 5))
    assert pixels[exhausted] > 100, "no exhausted budget bar on the screenshot"
    assert len(pixels) > 50, "the screenshot is nearly one colour"


def test_costs_page_in_chromium(chromium_bin: str, app: dict[str, Any], tmp_path: Path) -> None:
    with urllib.request.urlopen(app["url"] + "/costs", timeout=10) as reply:
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/html")
        assert "default-src 'none'" in reply.headers["Content-Security-Policy"]
    dom, png = render_in_chromium(chromium_bin, app["url"] + "/costs", tmp_path / "served")
    check_page(dom, app)
    check_screenshot(png, len(expected(app)["features"]))
    keep = os.environ.get("SPENDMETER_SCREENSHOT_DIR")
    if keep:  # to look at it: SPENDMETER_SCREENSHOT_DIR=/tmp/shots pytest tests/e2e/test_costs_page_chromium.py
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / "costs-served.png").write_bytes(png.read_bytes())


def test_report_html_file_in_chromium(chromium_bin: str, app: dict[str, Any], tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "spendmeter.cli", "report", "--ledger", str(app["ledger"]),
                           "--html", str(report), "--budgets", str(app["work"] / "budgets.yaml")],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    dom, png = render_in_chromium(chromium_bin, report.as_uri(), tmp_path / "file")
    check_page(dom, app)
    check_screenshot(png, len(expected(app)["features"]))
    keep = os.environ.get("SPENDMETER_SCREENSHOT_DIR")
    if keep:
        (Path(keep) / "costs-report.png").write_bytes(png.read_bytes())
