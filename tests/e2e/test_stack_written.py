"""What `spendmeter stack write` writes passes the real tools: promtool (config, rules and the rules' own unit
tests, run from the written directory) and amtool, and a real Prometheus started on the written config
scrapes the given target."""

from __future__ import annotations

import subprocess
from pathlib import Path

import servers

from spendmeter import stack


def _run(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd, check=False)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def test_written_prometheus_files_pass_promtool(promtool_bin: str, tmp_path: Path) -> None:
    stack.write(tmp_path, "127.0.0.1:19464")
    prom = tmp_path / "prometheus"
    assert "2 rule files found" in _run([promtool_bin, "check", "config", "prometheus.yml"], prom)
    tests = sorted(str(p.relative_to(prom)) for p in (prom / "tests").glob("*.yml"))
    assert len(tests) >= 3
    assert _run([promtool_bin, "test", "rules", *tests], prom).count("SUCCESS") >= len(tests)


def test_written_alertmanager_config_passes_amtool(amtool_bin: str, tmp_path: Path) -> None:
    stack.write(tmp_path)
    assert "SUCCESS" in _run([amtool_bin, "check-config", "alertmanager.yml"], tmp_path / "prometheus")


def test_a_prometheus_on_the_written_config_scrapes_the_target(prometheus_bin: str, tmp_path: Path) -> None:
    exporter = servers.StubExporter('llm_cost_usd_total{provider="openai"} 1\n')
    port = servers.free_port()
    stack.write(tmp_path / "stack", exporter.address)
    config = tmp_path / "stack" / "prometheus" / "prometheus.yml"
    argv = [prometheus_bin, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    with open(tmp_path / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    prom = servers.Prometheus("prometheus", proc, tmp_path / "prometheus.log", f"http://127.0.0.1:{port}",
                              tmp_path)
    try:
        prom.wait_ready()
        # The shipped 15 s scrape interval: the first scrape comes within one interval.
        up = prom.wait_for_query(f'up{{job="spendmeter", instance="{exporter.address}"}} == 1', timeout=40)
        assert up
        rules = servers.http_json(prom.url + "/api/v1/rules")["data"]["groups"]
        assert {r["name"] for g in rules for r in g["rules"]} >= {"user:llm_cost_usd:increase1h", "LLMSpendSpike"}
    finally:
        prom.stop()
        exporter.stop()
