"""Build step only (the project's metadata is in pyproject.toml): the wheel carries the repository's own
prometheus/, grafana/ and docker-compose.yml as package data under spendmeter/stack/data/, copied here at
build time so they are not duplicated in git. `spendmeter stack write` reads them (src/spendmeter/stack)."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
STACK_DIRS = ("prometheus", "grafana")
STACK_FILES = ("docker-compose.yml",)


class BuildPyWithStack(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the repository's own directories
            return
        dest = Path(self.build_lib) / "spendmeter" / "stack" / "data"
        shutil.rmtree(dest, ignore_errors=True)  # a file removed from the repository leaves the wheel too
        for name in STACK_DIRS:
            shutil.copytree(ROOT / name, dest / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(".*", "__pycache__"))
        for name in STACK_FILES:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)


setup(cmdclass={"build_py": BuildPyWithStack})
