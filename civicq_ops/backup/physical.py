"""Physical backups: pg_basebackup (full, or incremental on PostgreSQL 17+), verified with
pg_verifybackup, and point-in-time recovery into a NEW local cluster from them and the WAL archive.

A physical backup is of the whole server (every database): its identity is the system identifier,
and its manifest's `database` is "*". It lives in `backups/<id>/data/` (plain format, so
pg_combinebackup can rebuild a chain) with PostgreSQL's own `backup_manifest` (a checksum of every
file), and civicq-ops' manifest.json beside it, written last as for logical backups.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from civicq_ops.backup.create import backups_dir, new_backup_id, private_dir
from civicq_ops.backup.inventory import complete
from civicq_ops.backup.manifest import ALL_DATABASES, PHYSICAL_KINDS, Manifest, checksum_files, fsync_dir, write_manifest
from civicq_ops.backup.tools import client_env, pg_tool, start_tool, stopped_on_exit
from civicq_ops.config import Project, Target
from civicq_ops.core.errors import ExecutionError, InputError, LocalClusterError
from civicq_ops.core.redaction import redact
from civicq_ops.postgres import wal_archive as wal
from civicq_ops.postgres.connect import one_row

# -- create ------------------------------------------------------------------------------------

@dataclass
class PhysicalOptions:
    incremental: bool = False
    checkpoint: str = "fast"
    verify: bool = True  # pg_verifybackup before it is listed (recorded as its verification)


def create_physical_backup(project: Project, target: Target, options: PhysicalOptions) -> Manifest:
    """pg_basebackup into `<id>.partial/data`, pg_verifybackup, manifest, rename into place."""
    from civicq_ops.postgres.connect import connect, connect_kwargs, one_row
    from civicq_ops.postgres.probe import system_identifier

    with connect(project, target, autocommit=True) as conn:
        server_version, major = one_row(conn.execute(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int / 10000"))
        sysid = system_identifier(conn)
        summarize = major >= 17 and one_row(conn.execute("SELECT current_setting('summarize_wal')::bool"))[0]
    if sysid is None:
        raise InputError(f"target '{target.name}': physical backups need a role that may read the system "
                         "identifier and replicate (superuser or REPLICATION with pg_read_all_settings)")
    root = backups_dir(project)
    private_dir(root)
    parent = None
    if options.incremental:
        if major < 17:
            raise InputError(f"incremental backups need PostgreSQL 17 or newer (the server is {server_version})")
        if not summarize:
            raise InputError("incremental backups need WAL summarization: set summarize_wal = on (the local "
                             "cluster turns it on) and take a full physical backup after that")
        chain = [m for m in complete(root, (sysid, ALL_DATABASES)) if m.kind in PHYSICAL_KINDS]
        if not chain:
            raise InputError("no physical backup of this server to build an incremental on: take "
                             "`backup create --physical` first")
        parent = chain[-1]
    pg_basebackup = pg_tool("pg_basebackup", major)
    backup_id = new_backup_id(target)
    partial, final = root / f"{backup_id}.partial", root / backup_id
    started, t0 = datetime.now(UTC), time.monotonic()
    partial.mkdir(mode=0o700)
    try:
        (partial / "pid").write_text(str(os.getpid()))
        args = [str(pg_basebackup), "--pgdata", str(partial / "data"), "--format", "plain", "--wal-method", "stream",
                "--checkpoint", options.checkpoint, "--label", backup_id, "--no-password"]
        if parent is not None:
            args += ["--incremental", str(root / parent.id / "data" / "backup_manifest")]
        _run(args, client_env(connect_kwargs(project, target)), "pg_basebackup")
        verified_at = None
        if options.verify:
            _verify_tool(pg_tool("pg_verifybackup", major), partial / "data", incremental=parent is not None)
            verified_at = datetime.now(UTC).isoformat()
        label = _backup_label(partial / "data")
        (partial / "pid").unlink()
        files = checksum_files(partial, ["data/backup_manifest", "data/backup_label"])
        size = sum(p.stat().st_size for p in (partial / "data").rglob("*") if p.is_file())
        manifest = Manifest(
            id=backup_id, target=target.name, database=ALL_DATABASES, format="plain", started_at=started.isoformat(),
            finished_at=datetime.now(UTC).isoformat(), duration_s=round(time.monotonic() - t0, 3),
            server_version=server_version, pg_dump_version=str(_version(pg_basebackup)), system_identifier=sysid,
            options={"incremental": parent is not None, "parent": parent.id if parent else None, **label},
            files=files, size_bytes=size, kind="physical-incremental" if parent else "physical",
            tool="civicq-ops pg_basebackup",
            verification={"at": verified_at, "ok": True, "level": "pg_verifybackup", "problems": [], "notes": []}
            if verified_at else None,
        )
        write_manifest(partial, manifest)
        os.replace(partial, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return manifest


def _version(program: Path):
    from civicq_ops.postgres.binaries import program_version

    return program_version(program)


def _run(args: list[str], env: dict, what: str) -> None:
    try:
        proc = start_tool(args, env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except OSError as e:
        raise ExecutionError(f"{what} could not start: {e}") from e
    with stopped_on_exit(proc):
        _out, err = proc.communicate()
    if proc.returncode != 0:
        lines = [ln for ln in err.splitlines() if "error" in ln.lower() or "fatal" in ln.lower()] or err.splitlines()
        cause = next((ln for ln in lines if "No space left" in ln), lines[0] if lines else "no output")
        raise ExecutionError(f"{what} failed (exit {proc.returncode}): {redact(cause)}; nothing was kept")


def _verify_tool(pg_verifybackup: Path, data: Path, incremental: bool) -> None:
    args = [str(pg_verifybackup), "--quiet", str(data)]
    if incremental:
        args.insert(2, "--no-parse-wal")  # the WAL of an incremental backup is checked on the combined chain
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ExecutionError(f"pg_verifybackup: {redact((proc.stderr or proc.stdout).strip().splitlines()[0])}")


_LABEL = {"START WAL LOCATION": "start_lsn", "START TIMELINE": "timeline", "START TIME": "start_time"}


def _backup_label(data: Path) -> dict:
    found: dict = {}
    for line in (data / "backup_label").read_text().splitlines():
        key, _, value = line.partition(": ")
        if key == "START WAL LOCATION":
            m = re.match(r"(\S+) \(file (\w+)\)", value)
            if m:
                found["start_lsn"], found["start_wal"] = m.group(1), m.group(2)
        elif key in _LABEL:
            found[_LABEL[key]] = value.strip()
    return found


def verify_physical(folder: Path, manifest: Manifest) -> list[str]:
    """pg_verifybackup over the backup (every file against backup_manifest, and its WAL)."""
    from civicq_ops.core.version import Version

    tool = pg_tool("pg_verifybackup", Version.parse(manifest.server_version).major)
    try:
        _verify_tool(tool, folder / "data", incremental=manifest.kind == "physical-incremental")
    except ExecutionError as e:
        return [e.message]
    return []


def latest_physical(project: Project, target: Target) -> Manifest:
    """The newest physical backup (full or incremental) of the target's server."""
    from civicq_ops.backup.inventory import target_identity

    sysid = target_identity(project, target)[0]
    found = [m for m in complete(backups_dir(project), (sysid, ALL_DATABASES)) if m.kind in PHYSICAL_KINDS]
    if not found:
        raise InputError(f"no physical backup of server {sysid} in {backups_dir(project)}")
    return found[-1]


def chain_of(root: Path, manifest: Manifest) -> list[Manifest]:
    """The backups to combine, full first: each incremental names its parent."""
    by_id = {m.id: m for m in complete(root)}
    chain = [manifest]
    while chain[0].options.get("parent"):
        parent = chain[0].options["parent"]
        if parent not in by_id:
            raise InputError(f"backup {manifest.id} is incremental on {parent}, which is missing or damaged: "
                             "the chain cannot be restored (restore an older complete chain)")
        chain.insert(0, by_id[parent])
    return chain


# -- restore (point in time) -------------------------------------------------------------------

@dataclass
class PitrOptions:
    to_time: str | None = None
    to_lsn: str | None = None
    to_latest: bool = False
    port: int | None = None
    data_dir: Path | None = None
    timeout_s: float = 600


@dataclass
class PitrResult:
    backup_id: str
    chain: list[str]
    data_dir: str
    port: int
    conninfo: dict
    recovered: list[str] = field(default_factory=list)  # the server's own words: where recovery stopped
    lsn: str | None = None
    timeline: int | None = None
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # copy or combine, start, recovery


_LSN = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")


def check_recovery_target(options: PitrOptions, backup_end: str | None = None, now: datetime | None = None) -> None:
    """Refuse, before anything is copied, a recovery target the server would only reject minutes
    later: exactly one target, a time with its zone (never the server's guess) that is after the end
    of the backup and not in the future, an LSN PostgreSQL can read."""
    if sum(bool(x) for x in (options.to_time, options.to_lsn, options.to_latest)) != 1:
        raise InputError("say where to recover to: exactly one of --to-time, --to-lsn, --to-latest")
    if options.to_lsn and not _LSN.match(options.to_lsn):
        raise InputError(f"--to-lsn must be an LSN such as 0/3000060, not {options.to_lsn!r}")
    if not options.to_time:
        return
    try:
        when = datetime.fromisoformat(options.to_time.strip())
    except ValueError:
        raise InputError(f"--to-time must be a time such as '2026-12-01 22:00:00+00', not {options.to_time!r}") from None
    if when.tzinfo is None:
        raise InputError(f"--to-time {options.to_time!r} has no time zone: add one (+00, +01:00), a recovery "
                         "target must not depend on the server's TimeZone setting")
    if backup_end and when < datetime.fromisoformat(backup_end):
        raise InputError(f"--to-time {options.to_time} is before the backup ended ({backup_end}): recovery cannot "
                         "stop before the backup is consistent; pick an older backup")
    if when > (now or datetime.now(UTC)):
        raise InputError(f"--to-time {options.to_time} is in the future: recovery would replay every archived "
                         "WAL segment and then fail; use --to-latest for that")


def restore_physical(project: Project, target: Target, folder: Path, manifest: Manifest,
                     options: PitrOptions) -> PitrResult:
    """Combine the chain, write the recovery settings, start a NEW local cluster on a free port as the
    unprivileged OS user, wait until recovery reaches the target and the server is promoted."""
    from psycopg.conninfo import conninfo_to_dict

    from civicq_ops.postgres.local_cluster import OS_USER, Credentials, LocalCluster

    if manifest.kind not in PHYSICAL_KINDS:
        raise InputError(f"backup {manifest.id} is a {manifest.kind} (logical) backup: restore it without --physical")
    check_recovery_target(options, manifest.finished_at)
    t0 = time.monotonic()
    root = backups_dir(project)
    chain = chain_of(root, manifest)
    from civicq_ops.postgres.connect import wal_archive_dir

    archive_root = wal_archive_dir(project, target)
    archive = archive_root / str(manifest.system_identifier)
    start_wal = chain[-1].options.get("start_wal")
    if not archive.is_dir():
        raise InputError(f"no WAL archive of server {manifest.system_identifier} in {archive.parent}: "
                         "configure archive_command with `civicq-ops wal archive` before taking backups")
    gap = wal.first_gap(archive, start_wal) if start_wal else None
    if gap:
        raise ExecutionError(f"WAL segment {gap} is missing from the archive {archive}: recovery would stop there; "
                             "nothing was restored")
    from civicq_ops.core.version import Version

    major = Version.parse(manifest.server_version).major
    bin_dir = pg_tool("pg_basebackup", major).parent
    data = options.data_dir or _new_data_dir(project, manifest)
    if data.exists():
        raise InputError(f"{data} exists: a restore goes into a new data directory")
    data.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(data.parent, 0o755)
    try:
        if len(chain) > 1:
            combine = pg_tool("pg_combinebackup", major)
            _run([str(combine), *[str(root / m.id / "data") for m in chain], "--output", str(data)], dict(os.environ),
                 "pg_combinebackup")
        else:
            shutil.copytree(root / manifest.id / "data", data, symlinks=True)
        for leftover in ("postmaster.pid", "postmaster.opts", "standby.signal"):
            (data / leftover).unlink(missing_ok=True)
        (data / "recovery.signal").write_text("")
        _chown_tree(data, OS_USER)
        copied = time.monotonic()
        settings = {"restore_command": wal.restore_command(archive_root, str(manifest.system_identifier)),
                    "archive_mode": "off",
                    "recovery_target_action": "promote", "recovery_target_timeline": "latest"}
        if major >= 17:
            settings["summarize_wal"] = "off"
        if options.to_time:
            settings["recovery_target_time"] = options.to_time
        elif options.to_lsn:
            settings["recovery_target_lsn"] = options.to_lsn
        creds = _credentials(project, target, conninfo_to_dict)
        cluster = LocalCluster(data, bin_dir=bin_dir, port=options.port, settings=settings)
        cluster._write_credentials(Credentials(port=0, password=creds["password"], user=creds["user"],
                                               bin_dir=str(cluster.bin_dir)))
        with open(data / "postgresql.conf", "a") as conf:  # a copy of a local cluster has it already
            conf.write("\ninclude_if_exists = 'civicq-ops.conf'\n")
        try:
            cluster.start()
        except LocalClusterError as e:  # the server's FATAL line says why (e.g. the target was never reached)
            raise ExecutionError(f"recovery failed: {_log_tail(cluster)}; nothing was kept") from e
        started = time.monotonic()
        result = _wait_promoted(cluster, options.timeout_s)
        result.phases = {"combine" if len(chain) > 1 else "copy": round(copied - t0, 3),
                         "start": round(started - copied, 3), "recovery": round(time.monotonic() - started, 3)}
    except BaseException:
        _stop_quietly(data)
        shutil.rmtree(data, ignore_errors=True)
        data.with_name(data.name + ".json").unlink(missing_ok=True)
        if options.data_dir is None:
            shutil.rmtree(data.parent, ignore_errors=True)  # the folder made for this restore
        raise
    result.backup_id, result.chain, result.data_dir = manifest.id, [m.id for m in chain], str(data)
    result.seconds = round(time.monotonic() - t0, 3)
    return result


def _credentials(project: Project, target: Target, conninfo_to_dict) -> dict:
    from civicq_ops.postgres.connect import connect_kwargs

    kw = connect_kwargs(project, target)
    if kw.get("conninfo"):
        kw = {**conninfo_to_dict(str(kw["conninfo"])), **{k: v for k, v in kw.items() if k != "conninfo"}}
    if not kw.get("password") and os.environ.get("PGPASSWORD"):
        kw["password"] = os.environ["PGPASSWORD"]
    return {"user": kw.get("user") or "postgres", "password": kw.get("password") or ""}


def _new_data_dir(project: Project, manifest: Manifest) -> Path:
    from civicq_ops.postgres.local_cluster import OS_USER, _ensure_os_user, _first_untraversable

    name = f"{manifest.id}-restored-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    base = project.state_dir / "restores"
    if os.geteuid() == 0:
        entry = _ensure_os_user(OS_USER)
        if _first_untraversable(project.root, entry.pw_uid, entry.pw_gid) is not None:
            base = Path("/var/tmp") / "civicq-ops-restores"
            base.mkdir(mode=0o755, exist_ok=True)
    return base / name / "data"


def _chown_tree(path: Path, os_user: str) -> None:
    if os.geteuid() != 0:
        return
    import pwd

    entry = pwd.getpwnam(os_user)
    for dirpath, dirs, files in os.walk(path):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    os.chmod(path, 0o700)


def _wait_promoted(cluster, timeout_s: float) -> PitrResult:
    import psycopg

    deadline = time.monotonic() + timeout_s
    kw: dict | None = None
    while True:
        if not cluster.status().running:  # it stopped: its log's FATAL line says why
            raise ExecutionError(f"recovery failed: {_log_tail(cluster)}")
        try:
            kw = kw or cluster.conninfo()  # raises if the server stopped since the line above
            with psycopg.connect(autocommit=True, **kw) as conn:
                if not one_row(conn.execute("SELECT pg_is_in_recovery()"))[0]:
                    lsn, tli = one_row(conn.execute("SELECT pg_current_wal_lsn()::text, timeline_id "
                                                    "FROM pg_control_checkpoint()"))
                    return PitrResult(backup_id="", chain=[], data_dir="", port=int(kw["port"]), conninfo=kw,
                                      recovered=_recovery_lines(cluster), lsn=lsn, timeline=tli)
        except (psycopg.OperationalError, LocalClusterError):
            pass
        if time.monotonic() > deadline:
            raise ExecutionError(f"recovery did not finish within {timeout_s:.0f}s: {_log_tail(cluster)}")
        time.sleep(0.2)


_RECOVERY = re.compile(r"(recovery stopping|last completed transaction|redo done|consistent recovery state|"
                       r"selected new timeline|archive recovery complete|recovery ended)")


def _recovery_lines(cluster) -> list[str]:
    text = cluster.log_file.read_text(errors="replace") if cluster.log_file.exists() else ""
    return [ln.split("LOG:", 1)[-1].strip() for ln in text.splitlines() if _RECOVERY.search(ln)]


def _log_tail(cluster) -> str:
    text = cluster.log_file.read_text(errors="replace") if cluster.log_file.exists() else ""
    lines = [ln.split(" FATAL:", 1)[-1].strip() if " FATAL:" in ln else ln.strip()
             for ln in text.splitlines() if "FATAL" in ln or "PANIC" in ln]
    return redact(lines[-1]) if lines else "see " + str(cluster.log_file)


def _stop_quietly(data: Path) -> None:
    from civicq_ops.postgres.local_cluster import LocalCluster

    try:
        LocalCluster(data).stop()
    except Exception:  # noqa: BLE001 - cleanup after a failure: the first error is the one to report
        pass
