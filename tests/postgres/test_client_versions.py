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
