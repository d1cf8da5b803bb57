"""The wheel is the product a team installs: built from this tree, installed into a fresh venv
(no access to this repository's folders), it runs the CivicQ commands from an empty folder, using
the migrations, sql, seeds, checks and policies it carries. About a minute (pip reuses its cache)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from civicq_ops.core.assets import ASSETS
from tests.fixtures.pg import REPO

pytestmark = pytest.mark.wheel


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


# Local state that must not reach the build: a reused build/ folder would hide a broken build step.
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", ".civicq-ops", "backups", "__pycache__",
                                     ".pytest_cache", ".ruff_cache", ".mypy_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source") / "civicq-ops"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCE)
    out = tmp_path_factory.mktemp("wheel")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)], source,
                 dict(os.environ))
    assert built.returncode == 0, built.stderr
    [path] = out.glob("civicq_ops-*.whl")
    return path


def test_the_wheel_carries_every_shipped_folder(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for asset in ASSETS:
        assert any(n.startswith(f"civicq_ops/_data/{asset}/") for n in names), asset
    assert "civicq_ops/_data/checks/backup.yaml" in names and "civicq_ops/_data/sql/views.sql" in names
    assert "civicq_ops/_data/migrations/env.py" in names and "civicq_ops/_data/seeds/seed_dev.py" in names
    assert "civicq_ops/schemas/checks.schema.json" in names and "civicq_ops/py.typed" in names
    assert not [n for n in names if "__pycache__" in n]


def test_installed_from_the_wheel_it_runs_the_civicq_commands_from_an_empty_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    created = _run([sys.executable, "-m", "venv", str(venv)], tmp_path, dict(os.environ))
    assert created.returncode == 0, created.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG", "VIRTUAL_ENV", "PYTHON"))}
    installed = _run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], tmp_path, env)
    assert installed.returncode == 0, installed.stderr
    ops = str(venv / "bin" / "civicq-ops")
    empty = tmp_path / "empty"
    empty.mkdir()

    def step(*args: str) -> subprocess.CompletedProcess[str]:
        return _run([ops, *args], empty, env)

    try:
        for args in (["db", "up"], ["db", "migrate"], ["db", "seed"]):
            result = step(*args)
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        run = step("run", "checks", "--format", "json")
        assert run.returncode in (0, 1), run.stderr  # a gate may fail (no backup yet); nothing may error
        report = json.loads(run.stdout)
        assert report["summary"]["error"] == 0 and len({f["check"] for f in report["findings"]}) >= 70
        backup = step("backup", "create")
        assert backup.returncode == 0, backup.stderr
        assert [p.name for p in (empty / "backups").iterdir() if not p.name.endswith(".partial")]
        assert sorted(p.name for p in empty.iterdir()) == [".civicq-ops", "backups"]
    finally:
        down = step("db", "down")
    assert down.returncode == 0 and down.stdout.strip() == "local PostgreSQL stopped", down.stderr
