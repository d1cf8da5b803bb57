"""Secrets never leak (issue 11 points 4-6): not on psql's command line (what `ps` shows every
local user), not in `--debug` tracebacks, not in libpq's fragments of a malformed string; and a
connection error names host and port on stderr. Real PostgreSQL 15 and 18."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.pg import REPO

SECRET = "SECRETPART-9f3a"


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_psql_gets_the_password_through_its_environment_not_its_command_line(db, tmp_path):
    kw = db.conninfo
    url = db.url
    assert str(kw["password"]) in url
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    env["CIVICQ_DATABASE_URL"] = url
    proc = subprocess.Popen([sys.executable, "-m", "civicq_ops", "--config", str(REPO / "civicq-ops.yaml"), "db",
                             "psql", "-At", "-c", "SELECT pg_sleep(1.5), 'connected'"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        psql = None
        for _ in range(100):
            # psql itself (not `psql --version`, nor a fork that has not exec'd yet)
            kids = [c for c in children(proc.pid)
                    if _cmdline(c).split(b"\0")[0].endswith(b"psql") and b"\0-At\0" in _cmdline(c)]
            if kids:
                psql = kids[0]
                break
            time.sleep(0.05)
        assert psql, "psql was not started"
        cmdline = Path(f"/proc/{psql}/cmdline").read_bytes().decode()
        assert str(kw["password"]) not in cmdline and "password" not in cmdline
        assert f"port={kw['port']}" in cmdline and f"dbname={db.name}" in cmdline
        environ = Path(f"/proc/{psql}/environ").read_bytes().split(b"\0")
        assert f"PGPASSWORD={kw['password']}".encode() in environ
        assert oct(os.stat(f"/proc/{psql}/environ").st_mode & 0o777) == "0o400"  # its owner only
    finally:
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.strip().endswith("|connected")


@pytest.mark.parametrize("url", [
    f"postgresql://app:{SECRET} x@127.0.0.1:1/db",        # a space: libpq quotes the password
    f"host=127.0.0.1 port=1 password={SECRET} more dbname=x",  # libpq quotes a fragment
    f"postgresql://app:{SECRET}@[::1/db",                  # malformed host
])
def test_debug_tracebacks_and_errors_mask_malformed_connection_strings(cli, url):
    for command in (("run", "checks", "--check", "invalid-index"), ("db", "migrate"), ("db", "psql", "-c", "x")):
        for debug in ((), ("--debug",)):
            result = cli("--config", str(REPO / "civicq-ops.yaml"), *debug, *command, env={"CIVICQ_DATABASE_URL": url})
            assert "SECRETPART" not in result.output, result.output
            assert " more " not in result.output, result.output
            assert result.exit_code in (2, 3), result.output  # the same with and without --debug
            assert ("Traceback" in result.stderr) == (bool(debug) and command[0] == "db"), result.output


def test_connection_refused_names_host_and_port_on_stderr(cli):
    url = f"postgresql://app:{SECRET}@127.0.0.1:1/civicq"
    result = cli("--config", str(REPO / "civicq-ops.yaml"), "run", "checks", "--check", "invalid-index",
                 env={"CIVICQ_DATABASE_URL": url})
    assert result.exit_code == 3
    assert "error: cannot connect to target 'env' at 127.0.0.1:1 (database civicq): Connection refused" \
        in result.stderr
    assert SECRET not in result.output
