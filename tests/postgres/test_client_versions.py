"""Finding the client programs of a backup asks `--version` once per PostgreSQL bin folder, not once
per program (issue 14 point 6), and still gives each program's real version."""

from __future__ import annotations

import subprocess
from pathlib import Path

from civicq_ops.postgres import binaries

PG15 = Path("/usr/lib/postgresql/15/bin")


def test_one_version_lookup_serves_every_program_of_a_bin_folder(monkeypatch):
    assert (PG15 / "postgres").is_file(), "scripts/ensure-deps.sh installs PostgreSQL 15"
    monkeypatch.setattr(binaries, "candidate_client_dirs", lambda extra=None: [PG15])
    monkeypatch.setattr(binaries, "_FOLDER_VERSIONS", {})
    binaries.program_version.cache_clear()
    found = [binaries.find_client(name) for name in ("pg_dump", "pg_dumpall", "pg_restore", "psql")]
    assert binaries.program_version.cache_info().misses == 1
    real = subprocess.run([str(found[2]), "--version"], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL).stdout
    assert str(binaries._FOLDER_VERSIONS[PG15]) in real


def _versioned(folder: Path, name: str, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / name
    program.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
    program.chmod(0o755)
    return program


def test_one_program_reached_by_two_paths_is_asked_once(monkeypatch, tmp_path):
    real = _versioned(tmp_path / "real", "pg_dump", "16.2")
    (tmp_path / "link").mkdir()
    (tmp_path / "link" / "pg_dump").symlink_to(real)
    monkeypatch.setattr(binaries, "candidate_client_dirs", lambda extra=None: [tmp_path / "real", tmp_path / "link"])
    binaries.program_version.cache_clear()
    assert binaries.find_client("pg_dump") == real
    assert binaries.program_version.cache_info().misses == 1


def test_debians_pg_wrapper_is_not_asked_when_a_versioned_bin_folder_was_found(monkeypatch, tmp_path):
    assert (PG15 / "pg_dump").is_file(), "scripts/ensure-deps.sh installs PostgreSQL 15"
    wrapper = _versioned(tmp_path / "share", "pg_wrapper", "99.0")  # it would win, were it asked
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "pg_dump").symlink_to(wrapper)
    monkeypatch.setattr(binaries, "candidate_client_dirs", lambda extra=None: [PG15, tmp_path / "bin"])
    monkeypatch.setattr(binaries, "_FOLDER_VERSIONS", {})
    binaries.program_version.cache_clear()
    assert binaries.find_client("pg_dump") == PG15 / "pg_dump"
    # Alone, the wrapper is still a candidate.
    monkeypatch.setattr(binaries, "candidate_client_dirs", lambda extra=None: [tmp_path / "bin"])
    assert binaries.find_client("pg_dump") == tmp_path / "bin" / "pg_dump"
