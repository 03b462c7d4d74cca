"""The wheel carries the stack files, byte for byte the repository's, and `spendmeter stack write` finds them
in an installed wheel (not only in a checkout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = "spendmeter/stack/data/"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = out.glob("spendmeter-*.whl")
    return path


def repo_stack_files() -> dict[str, bytes]:
    files = {str(p.relative_to(ROOT)): p.read_bytes()
             for name in ("prometheus", "grafana") for p in (ROOT / name).rglob("*") if p.is_file()}
    files["docker-compose.yml"] = (ROOT / "docker-compose.yml").read_bytes()
    return files


def test_the_wheel_holds_the_repository_files_byte_for_byte(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        packaged = {n.removeprefix(DATA): z.read(n) for n in z.namelist() if n.startswith(DATA)}
    expected = repo_stack_files()
    assert sorted(packaged) == sorted(expected)
    assert [p for p in expected if packaged[p] != expected[p]] == []
    assert "prometheus/rules/recording.yml" in packaged and "grafana/dashboards/overview.json" in packaged


def test_stack_write_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                           str(wheel)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    script = (
        "import json, sys, spendmeter, spendmeter.stack as s\n"
        "from spendmeter.cli import main\n"
        "rc = main(['stack', 'write', sys.argv[1], '--target', 'app.internal:9464'])\n"
        "print(json.dumps({'file': spendmeter.__file__, 'root': str(s.data_root()), 'rc': rc}))\n"
    )
    out_dir = tmp_path / "stack"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(target)}
    done = subprocess.run([sys.executable, "-c", script, str(out_dir)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["rc"] == 0 and Path(info["file"]).is_relative_to(target), info
    assert Path(info["root"]).is_relative_to(target / "spendmeter" / "stack" / "data"), info
    for path, data in repo_stack_files().items():
        if path not in ("prometheus/prometheus.yml", "docker-compose.yml"):
            assert (out_dir / path).read_bytes() == data, path
    assert "app.internal:9464" in (out_dir / "prometheus/prometheus.yml").read_text()
