"""Destructive database commands respect the environment (issue 11.2), through the real CLI on
real PostgreSQL: a production rollback needs `--confirm TARGET` (never `--yes` alone) and takes a
safety backup first; `db seed` and `db reset` refuse production outright, embedded or not."""

from __future__ import annotations

import json

import pytest


def _project(tmp_path, url: str, environment: str = "production") -> str:
    (tmp_path / "civicq-ops.yaml").write_text(
        f"version: 1\ntargets:\n  prod: {{url: '{url}', environment: {environment}}}\n"
        f"  devlocal: {{embedded: true, environment: production, data_dir: '{tmp_path}/pgdata'}}\n"
        f"default_target: prod\n")
    return str(tmp_path / "civicq-ops.yaml")


def _revision(db) -> str:
    with db.connect() as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]


@pytest.mark.parametrize("args", [[], ["--yes"], ["--confirm", "staging"], ["--yes", "--confirm", "pro"]])
def test_rollback_on_production_without_the_named_confirmation_is_refused(tmp_path, civicq_db, cli, args):
    cfg = _project(tmp_path, civicq_db.url)
    before = _revision(civicq_db)
    result = cli("--config", cfg, "db", "rollback", *args)
    assert result.exit_code == 5 and "--confirm prod" in result.stderr, result.output
    assert _revision(civicq_db) == before
    with civicq_db.connect() as conn:
        assert conn.execute("SELECT to_regclass('public.votes') IS NOT NULL").fetchone()[0]


def _previous(revision: str) -> str:
    return f"{int(revision) - 1:04d}"


def test_rollback_on_production_with_the_named_confirmation_takes_a_safety_backup_first(tmp_path, civicq_db, cli):
    cfg = _project(tmp_path, civicq_db.url)
    before = _revision(civicq_db)
    result = cli("--config", cfg, "db", "rollback", "--confirm", "prod")
    assert result.exit_code == 0, result.output
    assert _revision(civicq_db) == _previous(before)
    listed = cli("--config", cfg, "backup", "list", "--format", "json")
    backups = json.loads(listed.stdout)
    assert len(backups) == 1 and "safety backup" in result.stdout and backups[0]["id"] in result.stdout, result.output


def test_rollback_elsewhere_asks_nothing(tmp_path, civicq_db, cli):
    cfg = _project(tmp_path, civicq_db.url, environment="staging")
    before = _revision(civicq_db)
    result = cli("--config", cfg, "db", "rollback")
    assert result.exit_code == 0 and _revision(civicq_db) == _previous(before), result.output


def test_seed_into_production_is_refused(tmp_path, civicq_db, cli):
    cfg = _project(tmp_path, civicq_db.url)
    with civicq_db.connect() as conn:
        conn.execute("DELETE FROM votes")
    result = cli("--config", cfg, "db", "seed", "--scale", "1")
    assert result.exit_code == 2 and "production" in result.stderr, result.output
    with civicq_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM votes").fetchone()[0] == 0


def test_reset_of_an_embedded_target_marked_production_is_refused(tmp_path, civicq_db, cli):
    cfg = _project(tmp_path, civicq_db.url)
    result = cli("--config", cfg, "--target", "devlocal", "db", "reset", "--yes")
    assert result.exit_code == 2 and "refusing to reset target 'devlocal'" in result.stderr, result.output
    assert not (tmp_path / "pgdata").exists()
