"""Benchmark `backup create` against plain PostgreSQL tools on the same database, in one run.

Logical (issue 14): the command `civicq-ops backup create --format custom` at most 1.15 times a plain
`pg_dump -Fc` (start-up, config, globals, row counts, checksums and manifest are the overhead), and
`--format directory --jobs 2` (gzip:1 by default) faster than `pg_dump -Fc`; plain `pg_dump -Fd -j2`
(pg_dump's gzip:6) and with `--compress gzip:1`, and the library call are timed beside them, all in
interleaved rounds (medians), with the size each wrote.
Physical (--physical, on a cluster archiving its WAL with `civicq-ops wal archive`): a full
`backup create --physical` at most 1.1 times a plain pg_basebackup; an incremental after 1% of the
rows changed, size and time against the full; `restore --physical --to-latest` against the same
steps by hand (copy, recovery.signal, restore_command, pg_ctl start, wait for promotion).
Usage: .venv/bin/python bench/backup.py [--scale 20] [--runs 5] [--bin-dir DIR] [--physical-only | --logical-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._cluster import bench_cluster, civicq_project, create_database  # noqa: E402
from civicq_ops.backup.create import BackupOptions, create_backup  # noqa: E402
from civicq_ops.backup.tools import client_env, compress_arg, pg_tool  # noqa: E402
from civicq_ops.civicq.migrations import migrate  # noqa: E402
from civicq_ops.civicq.seeding import seed  # noqa: E402
from civicq_ops.config import load_project  # noqa: E402


def median_time(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5, help="interleaved rounds of the logical comparison")
    ap.add_argument("--bin-dir", help="PostgreSQL binaries of the logical comparison (default: the embedded "
                                      "PostgreSQL 18); the physical one always uses PostgreSQL 18 (incremental)")
    ap.add_argument("--before", help="a checkout of an earlier civicq-ops (e.g. /work/main): its `backup create "
                                     "--format custom` is timed too, in the same rounds")
    ap.add_argument("--physical-only", action="store_true")
    ap.add_argument("--logical-only", action="store_true")
    args = ap.parse_args()
    if not args.physical_only:
        logical(args.scale, args.runs, args.bin_dir, args.before)
    if not args.logical_only:
        physical(args.scale)


def logical(scale: int, rounds: int, bin_dir: str | None, before: str | None = None) -> None:
    """The command a user runs (`civicq-ops backup create`: start-up, config, globals, row counts,
    checksums, manifest) against the plain tools, in interleaved rounds (A B C D, A B C D, ...) so
    that the shared machine's load hits every side alike; medians, ratios against `pg_dump -Fc`."""
    with bench_cluster(bin_dir) as cluster, tempfile.TemporaryDirectory() as work:
        backups = Path(work) / "backups"
        cfg, project, target = civicq_project(cluster, work, scale, extra=f"backups: {{dir: {backups}}}\n")
        kw = cluster.conninfo("civicq")
        major = cluster.server_version().major
        pg_dump = pg_tool("pg_dump", major)
        out = Path(work) / "plain"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
        sizes: dict[str, int] = {}

        def plain(*extra: str):
            def run():
                subprocess.run([str(pg_dump), *extra, "-f", str(out), "--no-password"], env=client_env(kw), check=True,
                               stdin=subprocess.DEVNULL, timeout=3600)
            return run

        def cli(*extra: str, checkout: Path = REPO):
            where = dict(env, PYTHONPATH=str(checkout))
            return lambda: subprocess.run([sys.executable, "-m", "civicq_ops", "--config", str(cfg), "--target", "bench",
                                           "backup", "create", *extra], env=where, cwd=checkout, check=True,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=3600)

        def library():
            create_backup(project, target, BackupOptions(format="custom"))

        def tidy(name: str) -> None:  # outside the timing: every run starts from an empty folder
            made = [out] if out.exists() else list(backups.glob("*")) if backups.exists() else []
            sizes[name] = sum(f.stat().st_size for p in made for f in ([p] if p.is_file() else p.rglob("*"))
                              if f.is_file())
            for p in made:
                shutil.rmtree(p) if p.is_dir() else p.unlink()

        gzip1 = compress_arg(pg_dump, "gzip:1")  # what `backup create` gives a directory dump by default
        runs = {"pg_dump -Fc": plain("-Fc"),
                "backup create --format custom": cli("--format", "custom"),
                "pg_dump -Fd -j2": plain("-Fd", "-j2"),
                "pg_dump -Fd -j2 --compress gzip:1": plain("-Fd", "-j2", "--compress", gzip1),
                "backup create --format directory -j2": cli("--format", "directory", "--jobs", "2"),
                "create_backup() custom (library)": library}
        if before:
            runs["--before: backup create --format custom"] = cli("--format", "custom", checkout=Path(before))
        times: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds):
            for name, fn in runs.items():
                seconds, cpu_s = wall_and_cpu(fn)
                times[name].append(seconds)
                cpu[name].append(cpu_s)
                tidy(name)
    base, base_cpu = statistics.median(times["pg_dump -Fc"]), statistics.median(cpu["pg_dump -Fc"])
    goals = {"backup create --format custom": " (goal <= 1.15)", "backup create --format directory -j2": " (goal < 1.00)"}
    print(f"PostgreSQL {major}, civicq --scale {scale}: {rounds} interleaved rounds, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end. Ratios against pg_dump -Fc: of the median "
          "times, the median of the rounds' own ratios, and of the client-side CPU seconds (server backends not "
          "counted); the size of what each wrote" + (f"; --before is {before}" if before else ""))
    for name in runs:
        seconds, per_round = statistics.median(times[name]), statistics.median(
            t / b for t, b in zip(times[name], times["pg_dump -Fc"], strict=True))
        print(f"  {name:42} {seconds:5.2f}s (min {min(times[name]):.2f}s) ratio {seconds / base:.2f}, per round "
              f"{per_round:.2f}{goals.get(name, '')}; CPU {statistics.median(cpu[name]):.2f}s ratio "
              f"{statistics.median(cpu[name]) / base_cpu:.2f}; {sizes[name] / 1e6:.1f} MB")


def wall_and_cpu(fn) -> tuple[float, float]:
    """Wall seconds of fn(), and the CPU seconds of this process and of the children it waited for."""
    import resource

    def used() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    c0, t0 = used(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, used() - c0


def physical(scale: int) -> None:
    import psycopg

    from civicq_ops.backup.physical import PhysicalOptions, PitrOptions, create_physical_backup, restore_physical
    from civicq_ops.postgres.local_cluster import LocalCluster, _free_port

    root = Path(tempfile.mkdtemp(prefix="civicq-bench-pitr-"))
    os.chmod(root, 0o755)
    cluster = LocalCluster(root / "data", fast=True, wal_archive=root / "wal-archive",
                           settings={"full_page_writes": "on"})
    cluster.start()
    try:
        url = create_database(cluster, "civicq")
        cfg = root / "civicq-ops.yaml"
        cfg.write_text(f"version: 1\ntargets:\n  bench: {{url: '{url}', environment: development}}\n"
                       f"backups: {{dir: {root}/backups, wal_archive: {root}/wal-archive}}\n")
        project = load_project(cfg, env={})
        target = project.target("bench")
        migrate(project, target)
        seed(project, target, scale=scale)
        kw = cluster.conninfo("civicq")
        pg_basebackup = pg_tool("pg_basebackup", 18)
        counter = iter(range(1000))

        def plain():
            out = root / f"plain{next(counter)}"
            subprocess.run([str(pg_basebackup), "--pgdata", str(out), "--format", "plain", "--wal-method", "stream",
                            "--checkpoint", "fast", "--no-password"], env=client_env(kw), check=True)

        fulls = []

        def ours():
            fulls.append(create_physical_backup(project, target, PhysicalOptions(verify=False)))

        def ours_verified():
            fulls.append(create_physical_backup(project, target, PhysicalOptions()))

        with psycopg.connect(autocommit=True, **kw) as conn:  # settle the seed: no hint-bit or vacuum writes later
            conn.execute("VACUUM (FREEZE, ANALYZE)")
            conn.execute("CHECKPOINT")
        base_runs, ours_runs, verified_runs = [], [], []
        for _ in range(5):  # interleaved, so that no side gets the warm cache
            base_runs.append(median_time(plain, 1))
            ours_runs.append(median_time(ours, 1))
            verified_runs.append(median_time(ours_verified, 1))
        base, full_s, verified_s = (statistics.median(x) for x in (base_runs, ours_runs, verified_runs))
        full = fulls[-1]
        for out in root.glob("plain*"):
            shutil.rmtree(out)
        incrementals = []
        for how, where in (("spread over the table", "id % 100 = 0"),
                           ("the newest ids", "id > (SELECT max(id) - max(id) / 100 FROM votes)")):
            with psycopg.connect(autocommit=True, **kw) as conn:
                rows = conn.execute(f"UPDATE votes SET created_at = created_at WHERE {where}").rowcount  # noqa: S608
            t0 = time.perf_counter()
            incr = create_physical_backup(project, target, PhysicalOptions(incremental=True))
            incrementals.append((how, rows, incr, time.perf_counter() - t0))
        with psycopg.connect(autocommit=True, **kw) as conn:
            conn.execute("SELECT pg_logical_emit_message(false, 'bench', 'x')")
            conn.execute("SELECT pg_switch_wal()")
            time.sleep(2)
        ours_runs, hand_runs = [], []
        for i in range(2):  # interleaved; the restored cluster is stopped outside the timing on both sides
            t0 = time.perf_counter()
            result = restore_physical(project, target, root / "backups" / full.id, full, PitrOptions(to_latest=True))
            ours_runs.append(time.perf_counter() - t0)
            LocalCluster(result.data_dir).stop()
            hand_runs.append(by_hand(root, full, kw, _free_port(), root / f"by-hand{i}"))
        ours_restore, hand_restore = min(ours_runs), min(hand_runs)
        phases = result.phases
        full_files = _without_wal(root / "backups" / full.id / "data")
        sizes = {m.id: _without_wal(root / "backups" / m.id / "data") for _, _, m, _ in incrementals}
    finally:
        cluster.stop()
        for data in root.glob("**/postmaster.pid"):
            LocalCluster(data.parent).stop()
        shutil.rmtree(root, ignore_errors=True)  # the restored cluster lives in <root>/.civicq-ops/restores
    print(f"physical: plain pg_basebackup {base:.2f}s; create_physical_backup {full_s:.2f}s ratio "
          f"{full_s / base:.2f} (goal <= 1.10); with pg_verifybackup (what `backup create --physical` runs) "
          f"{verified_s:.2f}s ratio {verified_s / base:.2f} - {full.size_bytes / 1e6:.1f} MB")
    for how, rows, incr, incr_s in incrementals:
        files = sizes[incr.id]
        print(f"incremental after {rows} votes (1%) changed, {how}: {incr_s:.2f}s, {incr.size_bytes / 1e6:.1f} MB "
              f"({files / 1e6:.1f} MB without its streamed WAL) - time {incr_s / full_s:.2f} and size "
              f"{incr.size_bytes / full.size_bytes:.3f} ({files / full_files:.3f} without WAL) of the full")
    print(f"restore --physical --to-latest {ours_restore:.2f}s {phases}; the same steps by hand "
          f"{hand_restore:.2f}s; ratio {ours_restore / hand_restore:.2f}")


def _without_wal(data: Path) -> int:
    return sum(p.stat().st_size for p in data.rglob("*") if p.is_file() and "pg_wal" not in p.parts)


def by_hand(root: Path, full, kw: dict, port: int, data: Path) -> float:
    """What a DBA would type: copy the base backup, restore_command, recovery.signal, start, wait.
    Returns the seconds up to promotion (the stop afterwards is not timed)."""
    import psycopg

    from civicq_ops.postgres import wal_archive

    t0 = time.perf_counter()
    shutil.copytree(root / "backups" / full.id / "data", data, symlinks=True)
    (data / "recovery.signal").write_text("")
    with open(data / "postgresql.auto.conf", "a") as conf:
        command = wal_archive.restore_command(root / "wal-archive", full.system_identifier).replace("'", "''")
        conf.write(f"restore_command = '{command}'\narchive_mode = off\nport = {port}\n"
                   f"unix_socket_directories = '{data}'\nrecovery_target_action = 'promote'\n"
                   "fsync = on\nsynchronous_commit = on\n")  # as civicq-ops restores: durable
    subprocess.run(["chown", "-R", "civicq-pg:civicq-pg", str(data)], check=True)
    os.chmod(data, 0o700)
    subprocess.run(["runuser", "-u", "civicq-pg", "--", str(pg_tool("pg_ctl", 18)), "-D", str(data), "-l",
                    str(data / "log.txt"), "-w", "start"], check=True, capture_output=True, cwd="/")
    while True:
        try:
            with psycopg.connect(autocommit=True, **{**kw, "port": port}) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    break
        except psycopg.OperationalError:
            pass
        time.sleep(0.2)
    seconds = time.perf_counter() - t0
    subprocess.run(["runuser", "-u", "civicq-pg", "--", str(pg_tool("pg_ctl", 18)), "-D", str(data), "-m", "fast",
                    "stop"], check=True, capture_output=True, cwd="/")
    return seconds


if __name__ == "__main__":
    main()
