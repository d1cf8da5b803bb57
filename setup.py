"""The wheel carries the folders civicq-ops ships beside its code (checks, policies, migrations,
sql, seeds): they stay top-level in this repository, and this build step copies them under
civicq_ops/_data/ in the built package, where civicq_ops.core.assets finds them. Everything else
is in pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
ASSETS = ("checks", "policies", "migrations", "sql", "seeds")  # as civicq_ops/core/assets.py


class BuildPyWithAssets(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the repository's folders directly
            return
        data = Path(self.build_lib) / "civicq_ops" / "_data"
        shutil.rmtree(data, ignore_errors=True)  # a reused build/ folder must not keep removed files
        for name in ASSETS:
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, data / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithAssets})
