"""pg_dump, pg_dumpall, pg_restore: the newest client at least as new as the server."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from civicq_ops.core.conninfo import split_url
from civicq_ops.core.identifiers import quote_ident
from civicq_ops.postgres.binaries import find_client

if TYPE_CHECKING:
    from civicq_ops.config import Project, Target


def pg_tool(name: str, server_major: int) -> Path:
    """A `name` of the server's own major when installed, else the newest newer one; an older one is
    refused (MissingBinary). The same major matters: pg_dump 17+ writes `SET transaction_timeout`,
    which an older server rejects when the dump is restored into it."""
    return find_client(name, min_major=server_major, prefer_major=server_major or None)


def client_env(kw: dict) -> dict[str, str]:
    """libpq environment for a client program: host, port, user and password never go on argv.

    It starts from this process's environment, so a child tool gets the credentials psycopg uses
    here (PGPASSWORD, PGPASSFILE, PGSSL*, PGSERVICE); what the target names explicitly overrides them."""
    env = dict(os.environ)
    if kw.get("conninfo"):  # a URL target: split it, so its password never appears in `ps`
        kw = {**split_url(str(kw["conninfo"])), **{k: v for k, v in kw.items() if k != "conninfo"}}
    mapping = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD", "dbname": "PGDATABASE"}
    for key, var in mapping.items():
        if kw.get(key) is not None:
            env[var] = str(kw[key])
    if kw.get("sslmode"):
        env["PGSSLMODE"] = str(kw["sslmode"])
    env["PGAPPNAME"] = "civicq-ops backup"
    env["PGCONNECT_TIMEOUT"] = str(kw.get("connect_timeout", 10))
    return env


def psql_env(env: dict[str, str]) -> dict[str, str]:
    """A psql session's environment, reading and writing names as UTF-8 whatever the database's
    encoding (a LATIN1 database's `café` arrives as UTF-8; SQL_ASCII bytes pass through, kept by
    surrogateescape). Only for civicq-ops' own psql sessions: pg_dump reads PGCLIENTENCODING as the
    encoding of the dump."""
    return {**env, "PGCLIENTENCODING": "UTF8"}


# What `backup create` compresses with when neither --compress nor backups.compress says: a custom
# archive gets pg_dump's own default (gzip at zlib's level 6), so it costs what `pg_dump -Fc` costs;
# a directory dump gets gzip level 1. At --scale 100 (a 55 MB uncompressed dump) gzip:1 takes 0.28 s of
# pg_dump CPU for 10.8 MB where gzip:6 takes 0.97 s for 8.4 MB, and a -j2 dump with it is as fast as
# an uncompressed one (the server's COPY is then what it waits for). Any pg_restore reads gzip at any
# level; lz4 and zstd need pg_dump and pg_restore 16+ built with them (README, Backups).
DEFAULT_COMPRESS = {"custom": "gzip:6", "directory": "gzip:1"}


def compress_spec(spec: str | None, fmt: str) -> str:
    """The --compress a backup uses, as `METHOD:LEVEL` (`none` for none): what it was given, else its
    format's default. A pre-16 bare level (`-Z 5`) reads as gzip:5 and 0 as none."""
    spec = (spec or DEFAULT_COMPRESS[fmt]).strip().lower()
    method, _, level = spec.partition(":")
    if method.isdigit() and not level:
        return "none" if int(method) == 0 else f"gzip:{int(method)}"
    if method in ("none", "0") or (method == "gzip" and level == "0"):
        return "none"
    return spec


def takes_methods(pg_dump: Path) -> bool:
    """Whether this pg_dump takes `--compress=METHOD[:DETAIL]` (16+) rather than a gzip level."""
    from civicq_ops.postgres.binaries import program_version

    return program_version(pg_dump).major >= 16


def client_kwargs(project: Project, target: Target) -> dict[str, Any]:
    """What client_env needs of connect_kwargs (the connection, and connect_timeout where the URL sets
    none); for a URL target without importing psycopg, which `backup create` imports only once
    pg_dump runs."""
    if target.embedded or not target.url:
        from civicq_ops.postgres.connect import connect_kwargs

        return connect_kwargs(project, target)
    kw: dict[str, Any] = {"conninfo": target.url}
    if "connect_timeout" not in split_url(target.url):
        kw["connect_timeout"] = target.connect_timeout
    return kw


@cache
def compression_methods(pg_dump: Path) -> tuple[str, ...]:
    """What this pg_dump can compress with: gzip always; lz4 and zstd only if it was built with them."""
    methods = ["gzip"]
    if not takes_methods(pg_dump):  # before PostgreSQL 16: a gzip level only
        return tuple(methods)
    pg_config = pg_dump.with_name("pg_config")
    configure = ""
    if pg_config.exists():
        configure = subprocess.run([str(pg_config), "--configure"], capture_output=True, text=True).stdout
    for method in ("lz4", "zstd"):
        if f"--with-{method}" in configure:
            methods.append(method)
    return tuple(methods)


def compress_arg(pg_dump: Path, spec: str) -> str:
    """The --compress value this pg_dump understands (`spec` from compress_spec): before PostgreSQL 16
    only a gzip level."""
    method, _, level = spec.partition(":")
    if takes_methods(pg_dump):
        return spec
    if method == "none":
        return "0"
    return level or "6"  # gzip


def dbname_arg(name: str) -> str:
    """A `--dbname` value that libpq reads as exactly this database name: client tools expand a
    `--dbname` containing `=` as a connection string, so the name is wrapped in one."""
    from psycopg.conninfo import make_conninfo

    return make_conninfo(dbname=name)


def _libc_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the forked child only calls it
    except (OSError, AttributeError):  # not Linux
        return None


_PRCTL = _libc_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when civicq-ops dies, even by SIGKILL."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


@cache
def setpriv_path() -> str | None:
    """util-linux's setpriv when it can set the parent-death signal (2.33+): a tool started through it
    is spawned with vfork (no Python runs in the child), ~8 ms sooner than a fork of this process."""
    found = shutil.which("setpriv")
    if found is None or _PRCTL is None:
        return None
    try:
        help_text = subprocess.run([found, "--help"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                   timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return found if "--pdeathsig" in help_text else None


def start_tool(args: list[str], env: dict[str, str], **kw) -> subprocess.Popen:
    """Start a client tool whose files are private (umask 077) and which stops with civicq-ops: it gets
    SIGTERM when civicq-ops dies, even by SIGKILL (PR_SET_PDEATHSIG, through setpriv when there is one)."""
    setpriv = setpriv_path()
    if setpriv is not None:
        return subprocess.Popen([setpriv, "--pdeathsig", "TERM", "--", *args], env=env, umask=0o077, **kw)
    return subprocess.Popen(args, env=env, umask=0o077, preexec_fn=_die_with_parent, **kw)  # noqa: PLW1509


@contextmanager
def stopped_on_exit(proc: subprocess.Popen, grace_s: float = 10.0) -> Iterator[subprocess.Popen]:
    """Whatever ends the block (Ctrl-C, an error), the tool does not outlive it: SIGTERM (pg_dump
    then stops its own parallel workers), then SIGKILL after `grace_s`."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def psql_ident(name: str) -> str:
    """A name as a quoted SQL identifier for SQL that psql runs: any character but NUL, which no
    PostgreSQL name holds (and which would end psql's input line)."""
    if "\0" in name:
        raise ValueError("a PostgreSQL name cannot hold a NUL character")
    return quote_ident(name)


def psql_error(stderr: str) -> str:
    """The server's message in psql's error output (`psql:<stdin>:4: ERROR:  permission denied ...`,
    or `psql: error: connection to server ... failed: FATAL:  too many connections ...`)."""
    for line in stderr.splitlines():
        for mark in ("ERROR:", "FATAL:", "error:"):
            if mark in line:
                return " ".join(line.split(mark, 1)[1].split())
    return ""


def repeated(flag: str, values: list[str]) -> list[str]:
    """["--table", "a", "--table", "b"] from ("--table", ["a", "b"])."""
    return [arg for value in values for arg in (flag, value)]
