"""Fixtures of the report tests: a real headless Chromium, and a state store of the test's own."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def chromium() -> str:
    """The chromium binary; installed by scripts/ensure-browser.sh when missing (never skipped)."""
    found = shutil.which("chromium")
    if not found:
        subprocess.run([str(REPO / "scripts" / "ensure-browser.sh")], check=True, timeout=900)
        found = shutil.which("chromium")
    assert found, "scripts/ensure-browser.sh did not install chromium"
    return found


@pytest.fixture
def store(tmp_path):
    from civicq_ops.state.store import StateStore

    s = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()
