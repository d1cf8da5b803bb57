"""Plan signing keys, offline: generated once with mode 0600, or CIVICQ_PLAN_KEY; another key or an
edit fails verification; a key file others can read is refused."""

from __future__ import annotations

import os
import stat

import pytest

from civicq_ops.config import load_project
from civicq_ops.core.errors import ConfigError, PlanRefused
from civicq_ops.remediation.signing import plan_key, sign, verify


def _project(tmp_path, env=None):
    (tmp_path / "civicq-ops.yaml").write_text("version: 1\ntargets:\n  t: {url: 'postgresql://x@h/db'}\n")
    return load_project(tmp_path / "civicq-ops.yaml", env=env or {})


def test_the_key_file_is_made_once_with_mode_0600(tmp_path):
    project = _project(tmp_path)
    key = plan_key(project)
    path = tmp_path / ".civicq-ops" / "plan.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key) == 64
    assert plan_key(project) == key
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        plan_key(project)


def test_an_environment_key_wins_and_another_key_or_an_edit_fails(tmp_path):
    data = {"id": "abc123", "expires_at": "2026-12-01T00:00:00+00:00", "actions": [{"sql": ["VACUUM t"]}]}
    env_key = plan_key(_project(tmp_path, {"CIVICQ_PLAN_KEY": "a-long-ci-secret-value"}))
    assert env_key == b"a-long-ci-secret-value" and not (tmp_path / ".civicq-ops" / "plan.key").exists()
    data["signature"] = sign(data, env_key)
    verify(data, env_key, "plan.json")
    with pytest.raises(PlanRefused, match="signature does not match"):
        verify(data, plan_key(_project(tmp_path)), "plan.json")
    edited = {**data, "expires_at": "2099-01-01T00:00:00+00:00"}
    with pytest.raises(PlanRefused, match="signature does not match"):
        verify(edited, env_key, "plan.json")
    with pytest.raises(ConfigError, match="too short"):
        plan_key(_project(tmp_path, {"CIVICQ_PLAN_KEY": "short"}))
