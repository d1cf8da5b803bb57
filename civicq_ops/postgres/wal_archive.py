"""The WAL archive: `archive_command` and `restore_command` for point-in-time recovery.

`archive` copies one segment into `<dir>/<system identifier>/`: written to a temporary file,
fsynced, its SHA-256 written beside it, then linked into place (so a reader never sees half a
segment) and the folder fsynced. Archiving the same name again with the same content succeeds
(PostgreSQL retries after a crash); with different content it fails, so a second server can never
overwrite the first one's history. `restore` copies a segment back after checking its checksum.
`gaps` finds the first segment missing after a backup's start, so a restore can name it.

Standard library only, and runnable as a plain script (`python3 wal.py archive DIR %p %f`): the
server may run as an OS user that cannot import civicq-ops' virtualenv.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

SEGMENT = re.compile(r"^[0-9A-F]{24}$")
NAME = re.compile(r"^([0-9A-F]{24}(\.partial|\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history)$")
SEGMENT_SIZE_DEFAULT = 16 * 1024 * 1024


class ArchiveError(Exception):
    """The segment cannot be archived or restored; the message says why."""


def server_system_identifier(data_dir: Path) -> str:
    """The system identifier from global/pg_control (its first 8 bytes, little-endian)."""
    raw = (data_dir / "global" / "pg_control").read_bytes()[:8]
    return str(int.from_bytes(raw, "little"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(folder: Path) -> None:  # as backup.manifest.fsync_dir; this module stays standalone
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(folder: Path, name: str, source: Path | None = None, text: str | None = None) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            if source is not None:
                with open(source, "rb") as src:
                    while block := src.read(1 << 20):
                        out.write(block)
            else:
                out.write((text or "").encode())
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


def archive(archive_dir: Path, path: str, name: str, data_dir: Path | None = None) -> str:
    """Archive WAL file `path` (relative to the data dir, as %p gives it) as `name` (%f)."""
    if not NAME.match(name):
        raise ArchiveError(f"{name!r} is not a WAL file name")
    data_dir = data_dir or Path.cwd()
    source = data_dir / path
    folder = archive_dir / server_system_identifier(data_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest = folder / name
    digest = _sha256(source)
    if dest.exists():
        if _sha256(dest) == digest:
            return f"{name}: already archived with the same content"
        raise ArchiveError(f"{name}: already archived in {folder} with different content; refusing to overwrite it")
    tmp = _write_synced(folder, name, source=source)
    try:
        if _sha256(tmp) != digest:
            raise ArchiveError(f"{name}: the copy in {folder} does not match {source} (checksum)")
        side = _write_synced(folder, name + ".sha256", text=digest + "\n")
        os.replace(side, folder / (name + ".sha256"))
        try:
            os.link(tmp, dest)  # fails if another archiver put it there meanwhile
        except FileExistsError:
            if _sha256(dest) != digest:
                raise ArchiveError(f"{name}: archived concurrently with different content") from None
    finally:
        os.unlink(tmp)
    _fsync_dir(folder)
    return f"{name}: archived ({digest[:12]})"


def restore(archive_dir: Path, name: str, path: str) -> str:
    """Copy `name` from one server's archive folder to `path` (restore_command's %f and %p),
    checksum checked. A missing file is a normal answer (PostgreSQL asks for files that may not exist)."""
    source = archive_dir / name
    if not source.is_file():
        raise FileNotFoundError(name)
    side = source.with_name(name + ".sha256")
    if side.exists() and _sha256(source) != side.read_text().strip():
        raise ArchiveError(f"{source}: checksum mismatch: the archived segment is damaged")
    dest = Path(path)
    tmp = _write_synced(dest.parent, dest.name, source=source)
    os.replace(tmp, dest)
    return f"{name}: restored"


def segment_name(timeline: int, segno: int, segment_size: int = SEGMENT_SIZE_DEFAULT) -> str:
    per_id = 0x100000000 // segment_size
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


def segment_number(name: str, segment_size: int = SEGMENT_SIZE_DEFAULT) -> int:
    per_id = 0x100000000 // segment_size
    return int(name[8:16], 16) * per_id + int(name[16:24], 16)


def first_gap(folder: Path, start: str) -> str | None:
    """The first segment missing between `start` and the newest archived one on its timeline."""
    timeline = start[:8]
    present = {p.name for p in folder.iterdir() if SEGMENT.match(p.name) and p.name.startswith(timeline)}
    if not present:
        return start
    first, last = segment_number(start), max(segment_number(n) for n in present)
    for segno in range(first, last + 1):
        name = segment_name(int(timeline, 16), segno)
        if name not in present:
            return name
    return None


SCRIPT = "civicq-ops-wal.py"


def python_for_server() -> str:
    """A Python the server's OS user can run: ours, unless we are root (the server then runs as an
    unprivileged user that may not enter a private interpreter, e.g. a pyenv under /root)."""
    if os.geteuid() == 0 and Path("/usr/bin/python3").exists():
        return "/usr/bin/python3"
    return sys.executable


def install_script(archive_dir: Path, owner: tuple[int, int] | None = None) -> Path:
    """Copy this module into the archive folder, where the server's OS user can always run it."""
    archive_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    script = archive_dir / SCRIPT
    shutil.copyfile(__file__, script)
    os.chmod(script, 0o644)
    if owner is not None:
        os.chown(archive_dir, *owner)
    return script


def archive_command(archive_dir: Path) -> str:
    """archive_command for `civicq-ops wal archive` into `archive_dir` (needs install_script first)."""
    return (f"{shlex.quote(python_for_server())} {shlex.quote(str(archive_dir / SCRIPT))} archive "
            f"{shlex.quote(str(archive_dir))} %p %f")


def restore_command(archive_dir: Path, system_identifier: str) -> str:
    """restore_command reading one server's segments from `archive_dir`."""
    return (f"{shlex.quote(python_for_server())} {shlex.quote(str(archive_dir / SCRIPT))} restore "
            f"{shlex.quote(str(archive_dir / system_identifier))} %f %p")


def main(argv: list[str]) -> int:
    """`archive DIR %p %f` / `restore DIR %f %p`. Exit 0 done; 1 restore: no such file (PostgreSQL
    probes for files that may not exist); 2 usage; 3 error (different content, damaged, I/O)."""
    if len(argv) != 4 or argv[0] not in ("archive", "restore"):
        print("usage: civicq-ops-wal.py archive DIR %p %f | restore DIR %f %p", file=sys.stderr)
        return 2
    try:
        if argv[0] == "archive":
            archive(Path(argv[1]), argv[2], argv[3])
        else:
            restore(Path(argv[1]), argv[2], argv[3])
    except FileNotFoundError as e:
        if argv[0] == "restore":
            return 1
        print(f"error: civicq-ops wal {argv[0]}: {e}", file=sys.stderr)
        return 3
    except (ArchiveError, OSError) as e:
        print(f"error: civicq-ops wal {argv[0]}: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
