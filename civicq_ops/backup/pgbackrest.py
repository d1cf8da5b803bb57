"""Physical backups and point-in-time restores delegated to pgBackRest (`backups.engine: pgbackrest`).

The same commands as the native path (physical.py) drive it: `backup create --physical [--type
full|diff|incr]`, `backup list` (pgBackRest's `info --output=json` shown as manifests), `backup verify
LABEL` (`pgbackrest verify`), `restore --physical LABEL|--latest --to-time|--to-lsn|--to-latest` (into
a NEW data directory, started on a free port). pgBackRest is configured on its command line only
(`--no-config`: /etc/pgbackrest.conf is never read), with exactly the options each of its commands
accepts (it refuses the others). It runs on the server's machine as the OS user owning the data
directory (as root: that user; otherwise: this process's user), and its repository belongs to that user.

pgBackRest knows the PostgreSQL majors released before it: Debian bookworm's 2.45 stops at 15. An
explicit `engine: pgbackrest` on a server it does not support is an error (exit 2), never a silent
fallback; `engine: auto` falls back to the native path there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from civicq_ops.backup.create import backups_dir, private_dir
from civicq_ops.backup.manifest import Manifest
from civicq_ops.backup.physical import (
    PitrOptions,
    PitrResult,
    _credentials,
    _log_tail,
    _stop_quietly,
    _wait_promoted,
    check_recovery_target,
)
from civicq_ops.backup.tools import client_env, start_tool, stopped_on_exit
from civicq_ops.config import PGBACKREST_UNSAFE, PgBackRestSettings, Project, Target
from civicq_ops.core.errors import ConfigError, ExecutionError, InputError, LocalClusterError
from civicq_ops.core.fileio import write_atomic
from civicq_ops.core.redaction import redact

TYPES = ("full", "diff", "incr")
KINDS = tuple(f"pgbackrest-{t}" for t in TYPES)
LABEL = re.compile(r"^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$")  # how pgBackRest names a backup set

# The first pgBackRest release that supports each PostgreSQL major (its release notes: 18 came with
# 2.55.0, which also verifies one backup set with `verify --set`). A newer major than this table knows
# is left to pgBackRest itself when it is newer than the last release named here.
_FIRST_SUPPORTING = {14: (2, 34), 15: (2, 41), 16: (2, 46), 17: (2, 52), 18: (2, 55)}
_VERIFY_SET = (2, 55)

# The options each pgBackRest command accepts on its command line (`pgbackrest help COMMAND`).
_LOCK = {"stanza-create", "backup", "info", "restore", "archive-push", "archive-get", "expire"}
_SPOOL = {"restore"}  # archive-push and archive-get take it only with archive-async
_PG_PATH = {"stanza-create", "check", "backup", "restore", "archive-push", "archive-get"}
_PG_CONN = {"stanza-create", "check", "backup"}
_RETENTION = {"backup", "expire"}
_PROCESS = {"backup", "restore", "archive-push", "archive-get", "verify"}
_COMPRESS = {"backup", "archive-push"}


# -- the program, its version and the majors it supports ---------------------------------------

def program(settings: PgBackRestSettings) -> str:
    found = shutil.which(settings.bin)
    if not found:
        raise InputError(f"backups.engine is pgbackrest, but '{settings.bin}' is not installed: install the "
                         "Debian package pgbackrest (scripts/ensure-deps.sh does) or set backups.engine: native")
    return found


@cache
def version(prog: str) -> tuple[int, int]:
    try:
        out = subprocess.run([prog, "version"], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ExecutionError(f"{prog} version: {e}") from e
    m = re.search(r"pgBackRest (\d+)\.(\d+)", out)
    if not m:
        raise ExecutionError(f"{prog} version: unexpected output {out.strip()[:80]!r}")
    return int(m.group(1)), int(m.group(2))


def supports(pgbackrest_version: tuple[int, int], major: int) -> bool:
    if major in _FIRST_SUPPORTING:
        return pgbackrest_version >= _FIRST_SUPPORTING[major]
    return 10 <= major < min(_FIRST_SUPPORTING) or (major > max(_FIRST_SUPPORTING)
                                                     and pgbackrest_version > _FIRST_SUPPORTING[max(_FIRST_SUPPORTING)])


def newest_supported(pgbackrest_version: tuple[int, int]) -> int:
    return max([m for m, v in _FIRST_SUPPORTING.items() if pgbackrest_version >= v], default=13)


def checked_program(settings: PgBackRestSettings, major: int, server_version: str) -> str:
    """pgbackrest, when installed and supporting this major; else a one-line error (exit 2)."""
    prog = program(settings)
    v = version(prog)
    if not supports(v, major):
        raise InputError(f"backups.engine is pgbackrest, but pgBackRest {v[0]}.{v[1]} supports PostgreSQL up to "
                         f"{newest_supported(v)} and the server is {server_version}: install a newer pgBackRest or "
                         "set backups.engine: native")
    return prog


def settings_of(project: Project) -> PgBackRestSettings:
    settings = project.backups.pgbackrest
    if settings is None:
        raise InputError("backups.pgbackrest (stanza, repo_path) is not set in the project file")
    return settings


def use_pgbackrest(project: Project, major: int) -> bool:
    """Whether physical backups of a server of this major go to pgBackRest: `engine: pgbackrest` (an
    error where it cannot), or `engine: auto` where it is configured, installed and supports the major."""
    engine = project.backups.engine
    if engine == "native":
        return False
    settings = project.backups.pgbackrest
    if engine == "auto":
        if settings is None or not shutil.which(settings.bin):
            return False
        return supports(version(shutil.which(settings.bin) or settings.bin), major)
    return True


# -- the command line --------------------------------------------------------------------------

@dataclass
class Server:
    """What pgBackRest needs to know of the server, asked from the server itself."""

    data_dir: str
    port: int
    socket_dir: str
    user: str
    database: str
    major: int
    version: str
    system_identifier: str | None
    env: dict


def server_of(project: Project, target: Target) -> Server:
    from civicq_ops.postgres.connect import connect, connect_kwargs, one_row
    from civicq_ops.postgres.probe import system_identifier

    with connect(project, target, autocommit=True) as conn:
        data_dir, port, sockets, user, database, version_text, major = one_row(conn.execute(
            "SELECT current_setting('data_directory'), current_setting('port')::int, "
            "current_setting('unix_socket_directories'), current_user, current_database(), "
            "current_setting('server_version'), current_setting('server_version_num')::int / 10000"))
        sysid = system_identifier(conn)
    socket_dir = sockets.split(",")[0].strip()
    if not socket_dir:
        raise InputError(f"target '{target.name}': pgBackRest connects through a Unix socket, and the server "
                         "listens on none (unix_socket_directories is empty)")
    return Server(data_dir=data_dir, port=port, socket_dir=socket_dir, user=user, database=database, major=major,
                  version=version_text, system_identifier=sysid, env=client_env(connect_kwargs(project, target)))


def options(settings: PgBackRestSettings, command: str, pg_path: str | None = None,
            server: Server | None = None) -> list[str]:
    """The options `command` accepts, from the settings (pgBackRest refuses an option a command lacks)."""
    opts = ["--no-config", f"--stanza={settings.stanza}", f"--repo1-path={settings.repo_path}"]
    opts += [f"--log-path={settings.log_path}"] if settings.log_path else ["--log-level-file=off"]
    if command in _LOCK:
        opts.append(f"--lock-path={settings.lock_path}")
    if command in _SPOOL:
        opts.append(f"--spool-path={settings.spool_path}")
    if command in _PG_PATH and (pg_path or server):
        opts.append(f"--pg1-path={pg_path or server.data_dir}")  # type: ignore[union-attr]
    if command in _PG_CONN and server is not None:
        opts += [f"--pg1-port={server.port}", f"--pg1-socket-path={server.socket_dir}",
                 f"--pg1-user={server.user}", f"--pg1-database={server.database}"]
    if command in _RETENTION and settings.retention_full:
        opts.append(f"--repo1-retention-full={settings.retention_full}")
    if command in _PROCESS and settings.process_max:
        opts.append(f"--process-max={settings.process_max}")
    if command in _COMPRESS and settings.compress_type:
        opts.append(f"--compress-type={settings.compress_type}")
    return opts


def command_line(words: list[str]) -> str:
    """Words for /bin/sh inside a single-quoted server setting: plain, or in double quotes (spaces)."""
    out = []
    for word in words:
        bad = sorted(PGBACKREST_UNSAFE & set(word))
        if bad:
            raise ConfigError(f"pgBackRest path {word!r} has {''.join(bad)!r}, which archive_command and "
                              "restore_command cannot carry: choose a path without quotes, $, `, \\ or %")
        out.append(word if word and all(c.isalnum() or c in "@+=:,./-_" for c in word) else f'"{word}"')
    return " ".join(out)


def archive_command(settings: PgBackRestSettings, data_dir: str | Path) -> str:
    """The server's `archive_command` that pushes WAL into this stanza."""
    return command_line([settings.bin, *options(settings, "archive-push", pg_path=str(data_dir)), "archive-push"]) + " %p"


def restore_command(settings: PgBackRestSettings, data_dir: str | Path) -> str:
    return (command_line([settings.bin, *options(settings, "archive-get", pg_path=str(data_dir)), "archive-get"])
            + ' %f "%p"')


def _owner(path: str | Path) -> tuple[int, int] | None:
    """Run as the owner of `path` when we are root (pgBackRest refuses root, and its repository and the
    data directory belong to the server's OS user); as ourselves otherwise."""
    if os.geteuid() != 0:
        return None
    st = os.stat(path)
    return st.st_uid, st.st_gid


def _run(prog: str, settings: PgBackRestSettings, command: str, extra: list[str], run_as: tuple[int, int] | None,
         env: dict | None = None, pg_path: str | None = None, server: Server | None = None,
         timeout: float | None = None) -> str:
    args = [prog, *options(settings, command, pg_path, server), *extra, command]
    kw: dict = {"cwd": "/", "stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE,
                "text": True}
    if run_as is not None:
        kw.update(user=run_as[0], group=run_as[1], extra_groups=[])
    environment = dict(env if env is not None else os.environ)
    environment["LC_ALL"] = "C"
    try:
        proc = start_tool(args, environment, **kw)
    except OSError as e:
        raise ExecutionError(f"pgbackrest {command} could not start: {e}") from e
    with stopped_on_exit(proc):
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise ExecutionError(f"pgbackrest {command} did not finish within {timeout:.0f}s") from e
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (out + "\n" + err).splitlines() if ln.strip()]
        cause = next((ln for ln in lines if "ERROR" in ln), lines[0] if lines else "no output")
        raise ExecutionError(f"pgbackrest {command} failed (exit {proc.returncode}): {redact(cause)}")
    return out


# -- stanza and info -----------------------------------------------------------------------------

def create_stanza(project: Project, target: Target) -> str:
    """`stanza-create`, then `check` (a WAL segment really reaches the repository through archive_command)."""
    settings = settings_of(project)
    server = server_of(project, target)
    prog = checked_program(settings, server.major, server.version)
    run_as = _owner(server.data_dir)
    repo = Path(settings.repo_path)
    if not repo.exists():
        repo.mkdir(parents=True, mode=0o750)
        if run_as is not None:
            os.chown(repo, *run_as)
    _run(prog, settings, "stanza-create", [], run_as, server.env, server=server, timeout=300)
    try:
        _run(prog, settings, "check", [], run_as, server.env, server=server, timeout=300)
    except ExecutionError as e:
        raise ExecutionError(f"{e.message}; the server's archive_command must be: "
                             f"{archive_command(settings, server.data_dir)}") from e
    return settings.stanza


def info(project: Project, prog: str | None = None) -> dict:
    """`pgbackrest info --output=json` of the stanza; InputError when the stanza does not exist."""
    settings = settings_of(project)
    prog = prog or program(settings)
    repo = Path(settings.repo_path)
    missing = InputError(f"pgBackRest stanza '{settings.stanza}' does not exist in {repo}: run "
                         "`civicq-ops backup stanza-create` (and set the server's archive_command)")
    if not repo.is_dir():
        raise missing
    out = _run(prog, settings, "info", ["--output=json"], _owner(repo), timeout=120)
    try:
        stanza = json.loads(out)[0]
    except (ValueError, IndexError) as e:
        raise ExecutionError(f"pgbackrest info: unreadable output ({e})") from e
    if stanza.get("status", {}).get("code") in (1, 3):  # missing stanza path / missing stanza data
        raise missing
    return stanza


def manifests(project: Project, stanza: dict | None = None) -> list[Manifest]:
    """Every backup set of the stanza, as the manifests `backup list` shows (oldest first)."""
    stanza = stanza if stanza is not None else info(project)
    settings = settings_of(project)
    dbs = {db["id"]: db for db in stanza.get("db", [])}
    verified = _verifications(project)
    try:
        return [_manifest(b, dbs.get(b.get("database", {}).get("id"), {}), settings.stanza, verified.get(b["label"]))
                for b in stanza.get("backup", [])]
    except (KeyError, TypeError, ValueError) as e:  # a shape of pgBackRest's JSON not known here
        raise ExecutionError(f"pgbackrest info: unexpected output ({type(e).__name__} {e}): a pgBackRest "
                             "newer than this civicq-ops knows?") from e


def _manifest(b: dict, db: dict, stanza: str, verification) -> Manifest:
    """One backup set of `pgbackrest info --output json`."""
    start, stop = b["timestamp"]["start"], b["timestamp"]["stop"]
    return Manifest(
        id=b["label"], target=stanza, database="*", format="pgbackrest",
        started_at=datetime.fromtimestamp(start, UTC).isoformat(),
        finished_at=datetime.fromtimestamp(stop, UTC).isoformat(), duration_s=float(stop - start),
        server_version=str(db.get("version", "")), pg_dump_version=f"pgBackRest {b['backrest']['version']}",
        system_identifier=str(db["system-id"]) if "system-id" in db else None,
        options={"stanza": stanza, "type": b["type"], "prior": b.get("prior"),
                 "reference": b.get("reference"), "start_lsn": b["lsn"]["start"], "stop_lsn": b["lsn"]["stop"],
                 "start_wal": b["archive"]["start"], "stop_wal": b["archive"]["stop"],
                 "database_size": b["info"]["size"], "repository_size": b["info"]["repository"]["size"],
                 "repository_delta": b["info"]["repository"]["delta"], "error": b.get("error", False)},
        size_bytes=b["info"]["repository"]["delta"], kind=f"pgbackrest-{b['type']}", tool="pgbackrest",
        verification=verification)


def listed(project: Project) -> tuple[list[Manifest], str | None]:
    """The pgBackRest backups `backup list` merges in, and why there are none when pgBackRest cannot
    be asked (not installed, no stanza yet): none with the native engine, nor (auto) where pgBackRest is
    not installed."""
    settings = project.backups.pgbackrest
    if project.backups.engine == "native" or settings is None:
        return [], None
    if project.backups.engine == "auto" and not shutil.which(settings.bin):
        return [], None
    try:
        return manifests(project), None
    except InputError as e:
        return [], e.message


def find_set(project: Project, label: str | None, stanza: dict | None = None) -> Manifest:
    """A backup set by label, or (None) the newest one."""
    found = manifests(project, stanza)
    if label is None:
        if not found:
            raise InputError(f"no pgBackRest backup in stanza '{settings_of(project).stanza}': take "
                             "`civicq-ops backup create --physical` first")
        return found[-1]
    for m in found:
        if m.id == label:
            return m
    raise InputError(f"no pgBackRest backup {label} in stanza '{settings_of(project).stanza}' "
                     "(see `civicq-ops backup list`)")


# -- create and verify -------------------------------------------------------------------------

def create_backup(project: Project, target: Target, backup_type: str = "full", verify: bool = True) -> Manifest:
    """`pgbackrest backup --type=TYPE` (full, diff on the last full, incr on the last backup), then
    `pgbackrest verify`; returns the new set as a manifest."""
    if backup_type not in TYPES:
        raise InputError(f"--type must be one of {', '.join(TYPES)} (got {backup_type!r})")
    settings = settings_of(project)
    server = server_of(project, target)
    prog = checked_program(settings, server.major, server.version)
    before = {m.id for m in manifests(project, info(project, prog))}
    if backup_type != "full" and not before:
        raise InputError(f"no pgBackRest backup in stanza '{settings.stanza}' to build a {backup_type} backup on: "
                         "take `backup create --physical --type full` first")
    _run(prog, settings, "backup", [f"--type={backup_type}", "--start-fast"], _owner(server.data_dir), server.env,
         server=server)
    new = [m for m in manifests(project, info(project, prog)) if m.id not in before]
    if not new:
        raise ExecutionError("pgbackrest backup reported success, but `pgbackrest info` lists no new backup")
    if verify:
        verify_set(project, new[-1].id, prog)
        new = [m for m in manifests(project) if m.id == new[-1].id]
    return new[-1]


@dataclass
class SetVerification:
    ok: bool
    level: str
    problems: list
    seconds: float
    notes: list


_BACKUP_LINE = re.compile(r"^\s*backup: ([^,\s]+), status: ([^,\s]+)")
_COUNTS = re.compile(r"missing: (\d+), checksum invalid: (\d+), size invalid: (\d+), other: (\d+)")


def verify_set(project: Project, label: str, prog: str | None = None) -> SetVerification:
    """`pgbackrest verify` (every file of the backup, or before 2.55, which has no `--set`, of every
    backup, and the WAL archive, against their checksums): `label` is ok when it is valid and no WAL
    is damaged.
    The result of every set is recorded for `backup list`."""
    settings = settings_of(project)
    prog = prog or program(settings)
    t0 = time.monotonic()
    find_set(project, label)
    one_set = [f"--set={label}"] if version(prog) >= _VERIFY_SET else []  # 2.45: the whole repository
    out = _run(prog, settings, "verify", ["--output=text", "--verbose", *one_set], _owner(settings.repo_path),
               timeout=None)
    statuses: dict[str, str] = {}
    wal_problems: list[str] = []
    backup_problems: dict[str, list[str]] = {}
    current: str | None = None
    for line in out.splitlines():
        m = _BACKUP_LINE.match(line)
        if m:
            current = m.group(1)
            statuses[current] = m.group(2)
            continue
        if line.strip().startswith("archiveId:"):
            current = None
        counts = _COUNTS.search(line)
        if counts and any(int(x) for x in counts.groups()):
            what = ("missing {}, checksum invalid {}, size invalid {}, other {}").format(*counts.groups())
            if current is None:
                wal_problems.append(f"WAL archive: {what}")
            else:
                backup_problems.setdefault(current, []).append(f"{current}: {what}")
    if label not in statuses:
        raise ExecutionError(f"pgbackrest verify did not report on backup {label}: {out.strip()[:200]}")
    at = datetime.now(UTC).isoformat()
    records = _verifications(project)
    for name, status in statuses.items():
        problems = backup_problems.get(name, []) + ([] if status == "valid" else [f"{name}: status {status}"])
        records[name] = {"at": at, "ok": not problems and not wal_problems, "level": "pgbackrest verify",
                         "problems": problems + wal_problems, "notes": []}
    _save_verifications(project, records)
    mine = records[label]
    return SetVerification(ok=mine["ok"], level="pgbackrest verify", problems=mine["problems"],
                           seconds=round(time.monotonic() - t0, 3),
                           notes=[f"pgbackrest verify checked {len(statuses)} backup(s) and the WAL archive of "
                                  f"stanza '{settings.stanza}'"])


def _verifications_file(project: Project) -> Path:
    return backups_dir(project) / f".pgbackrest-{settings_of(project).stanza}.json"


def _verifications(project: Project) -> dict:
    try:
        return json.loads(_verifications_file(project).read_text())
    except (OSError, ValueError):
        return {}


def _save_verifications(project: Project, records: dict) -> None:
    path = _verifications_file(project)
    private_dir(path.parent)
    write_atomic(path, json.dumps(records, indent=2, sort_keys=True) + "\n")
    os.chmod(path, 0o600)


# -- restore (point in time) -------------------------------------------------------------------

def restore_set(project: Project, target: Target, label: str | None, options: PitrOptions) -> PitrResult:
    """`pgbackrest restore` of a set into a NEW data directory (recovery to `options`' target, then
    promote, archiving off), started on a free port as the repository's OS user; returns a PitrResult."""
    from psycopg.conninfo import conninfo_to_dict

    from civicq_ops.backup.tools import pg_tool
    from civicq_ops.postgres.local_cluster import Credentials, LocalCluster

    check_recovery_target(options)  # before pgBackRest is even asked
    settings = settings_of(project)
    prog = program(settings)
    manifest = find_set(project, label, info(project, prog))
    check_recovery_target(options, manifest.finished_at)
    if not manifest.server_version.split(".")[0].isdigit():
        raise ExecutionError(f"pgbackrest info gives set {manifest.id} no PostgreSQL version "
                             f"({manifest.server_version!r}): cannot pick the server to restore it with")
    major = int(manifest.server_version.split(".")[0])
    checked_program(settings, major, manifest.server_version)
    t0 = time.monotonic()
    run_as = _owner(settings.repo_path)
    data = options.data_dir or _new_data_dir(project, manifest.id, run_as)
    if data.exists():
        raise InputError(f"{data} exists: a restore goes into a new data directory")
    data.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(data.parent, 0o755)
    data.mkdir(mode=0o700)
    if run_as is not None:
        os.chown(data, *run_as)
    os_user = _user_name(run_as)
    try:
        target_args = ["--type=default"]  # every archived segment; the server then promotes itself
        if options.to_time:
            target_args = ["--type=time", f"--target={options.to_time}", "--target-action=promote"]
        elif options.to_lsn:
            target_args = ["--type=lsn", f"--target={options.to_lsn}", "--target-action=promote"]
        _run(prog, settings, "restore",
             [f"--set={manifest.id}", *target_args, "--archive-mode=off",
              f"--recovery-option=restore_command={restore_command(settings, data)}"],
             run_as, pg_path=str(data))
        copied = time.monotonic()
        for leftover in ("postmaster.pid", "postmaster.opts", "standby.signal"):
            (data / leftover).unlink(missing_ok=True)
        creds = _credentials(project, target, conninfo_to_dict)
        settings_conf = {"archive_mode": "off"}
        if major >= 17:
            settings_conf["summarize_wal"] = "off"
        cluster = LocalCluster(data, bin_dir=pg_tool("pg_basebackup", major).parent, port=options.port,
                               os_user=os_user, settings=settings_conf)
        cluster._write_credentials(Credentials(port=0, password=creds["password"], user=creds["user"],
                                               bin_dir=str(cluster.bin_dir)))
        conf = (data / "postgresql.conf").read_text()
        if "include_if_exists = 'civicq-ops.conf'" not in conf:
            with open(data / "postgresql.conf", "a") as f:
                f.write("\ninclude_if_exists = 'civicq-ops.conf'\n")
        (data / "log").mkdir(exist_ok=True)
        if run_as is not None:
            os.chown(data / "log", *run_as)
        try:
            cluster.start()
        except LocalClusterError as e:
            raise ExecutionError(f"recovery failed: {_log_tail(cluster)}; nothing was kept") from e
        started = time.monotonic()
        result = _wait_promoted(cluster, options.timeout_s)
        result.phases = {"restore": round(copied - t0, 3), "start": round(started - copied, 3),
                         "recovery": round(time.monotonic() - started, 3)}
    except BaseException:
        _stop_quietly(data)
        shutil.rmtree(data, ignore_errors=True)
        data.with_name(data.name + ".json").unlink(missing_ok=True)
        if options.data_dir is None:
            shutil.rmtree(data.parent, ignore_errors=True)
        raise
    chain = [*(manifest.options.get("reference") or []), manifest.id]
    result.backup_id, result.chain, result.data_dir = manifest.id, chain, str(data)
    result.seconds = round(time.monotonic() - t0, 3)
    return result


def _user_name(run_as: tuple[int, int] | None) -> str:
    import pwd

    from civicq_ops.postgres.local_cluster import OS_USER

    if run_as is None:
        return OS_USER  # not root: LocalCluster runs the server as ourselves anyway
    return pwd.getpwuid(run_as[0]).pw_name


def _new_data_dir(project: Project, label: str, run_as: tuple[int, int] | None) -> Path:
    from civicq_ops.postgres.local_cluster import _first_untraversable

    name = f"{label}-restored-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    base = project.state_dir / "restores"
    if run_as is not None and _first_untraversable(project.root, *run_as) is not None:
        base = Path("/var/tmp") / "civicq-ops-restores"
        base.mkdir(mode=0o755, exist_ok=True)
    return base / name / "data"


def delegated(project: Project, target: Target) -> bool:
    """Whether this target's physical backups and restores go to pgBackRest (asks the server's major
    unless the engine is native)."""
    if project.backups.engine == "native":
        return False
    from civicq_ops.postgres.connect import connect, one_row

    with connect(project, target, autocommit=True) as conn:
        major = one_row(conn.execute("SELECT current_setting('server_version_num')::int / 10000"))[0]
    return use_pgbackrest(project, major)


def names_a_set(project: Project, backup_id: str | None) -> bool:
    """An id shaped like a pgBackRest label, with pgBackRest configured: it is one of its backups."""
    return bool(backup_id and LABEL.match(backup_id) and project.backups.pgbackrest is not None
                and project.backups.engine != "native")
