"""Shared fixtures: real PostgreSQL clusters (tests/fixtures/pg.py) and CLI helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.fixtures import pg
from tests.fixtures.pg import (  # noqa: F401  (fixtures)
    admin_conn,
    civicq_db,
    db,
    pg_cluster,
    project_file,
    seeded_template,
)


def pytest_report_header(config) -> list[str]:
    return pg.report_header()


def pytest_terminal_summary(terminalreporter) -> None:
    for major, (bin_dir, reason) in pg.MAJORS.items():
        if bin_dir is None:
            terminalreporter.write_line(f"note: PostgreSQL {major} tests were skipped: {reason}")


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def cli(tmp_path) -> Callable[..., CliResult]:
    """Run `civicq-ops ARGS` as a real process (as a user would), in a clean folder."""

    def run(*args: str, env: dict | None = None, cwd=None, input: str | None = None) -> CliResult:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "civicq_ops", *args],
            capture_output=True, text=True, env=full_env, cwd=cwd or tmp_path, input=input, timeout=300,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run
