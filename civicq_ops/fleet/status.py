"""`civicq-ops fleet status`: workers (procrastinate's heartbeats), the queue's depth by status, the
lag of each target (how long after its due time its last interval finished, and how long since),
and recent failures (targets down, failed jobs)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from civicq_ops.config import Project
from civicq_ops.fleet import ledger
from civicq_ops.fleet.inventory import expand
from civicq_ops.fleet.queue import QUEUE, SCHEDULER_LEASE, check_groups, ensure_schema, queue_url
from civicq_ops.postgres.connect import open_connection
from civicq_ops.state.store import open_store


@dataclass
class FleetStatus:
    workers: list[dict[str, Any]] = field(default_factory=list)
    queue: dict[str, int] = field(default_factory=dict)
    scheduler: dict[str, Any] | None = None
    targets: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    unlisted: dict[str, str] = field(default_factory=dict)  # group or target -> why it cannot be listed now

    def to_dict(self) -> dict[str, Any]:
        return {"workers": self.workers, "queue": self.queue, "scheduler": self.scheduler, "targets": self.targets,
                "failures": self.failures, "unlisted": self.unlisted}

    def text(self) -> str:
        lines = [f"workers: {len(self.workers)}" + "".join(
            f"\n  worker {w['id']}: last heartbeat {w['heartbeat_age_s']:.1f}s ago, {w['running']} job(s) running"
            for w in self.workers)]
        lines.append("queue: " + (", ".join(f"{k}={v}" for k, v in sorted(self.queue.items())) or "empty"))
        lines.append(f"scheduler: {self.scheduler['holder']}" if self.scheduler else "scheduler: none active")
        behind = [t for t in self.targets if t["behind"]]
        lines.append(f"targets: {len(self.targets)} ({len(behind)} behind)")
        for t in sorted(self.targets, key=lambda t: -(t["since_last_s"] or 1e9))[:10]:
            since = f"{t['since_last_s']:.0f}s ago" if t["since_last_s"] is not None else "never"
            lag = f"{t['lag_s']:.1f}s" if t["lag_s"] is not None else "-"
            lines.append(f"  {t['target']} [{t['check_group']}]: last run {since}, lag {lag}, status {t['status']}"
                         + (" BEHIND" if t["behind"] else ""))
        for name, why in sorted(self.unlisted.items()):
            lines.append(f"cannot list {name}: {why}")
        lines.append(f"failures: {len(self.failures)}")
        for f in self.failures[:10]:
            lines.append(f"  {f['target']} [{f['check_group']}] slot {f['slot']}: {f['status']}: {f.get('detail') or ''}")
        return "\n".join(lines) + "\n"


def fleet_status(project: Project, window_s: float = 3600.0) -> FleetStatus:
    url = queue_url(project)
    ensure_schema(url)
    groups = check_groups(project)
    out = FleetStatus()
    now = time.time()
    with open_connection({"conninfo": url}, what="the fleet queue", autocommit=True) as conn:
        for wid, age, running in conn.execute(
                "SELECT w.id, extract(epoch FROM now() - w.last_heartbeat)::float8, "
                "(SELECT count(*) FROM procrastinate_jobs j WHERE j.worker_id = w.id AND j.status = 'doing') "
                "FROM procrastinate_workers w ORDER BY w.id").fetchall():
            out.workers.append({"id": wid, "heartbeat_age_s": round(age, 1), "running": running})
        for status, count in conn.execute("SELECT status::text, count(*) FROM procrastinate_jobs WHERE queue_name = %s "
                                          "GROUP BY status", (QUEUE,)).fetchall():
            out.queue[status] = count
    store = open_store(project)
    try:
        lease = store.execute("SELECT holder, expires_at FROM leases WHERE name = ?", (SCHEDULER_LEASE,))
        if lease and lease[0][1] > now:
            out.scheduler = {"holder": lease[0][0], "expires_in_s": round(lease[0][1] - now, 1)}
        latest: dict[tuple[str, str], ledger.SlotRow] = {}
        for row in ledger.rows(store, since=now - window_s):
            if row.finished_at is not None:
                latest[(row.target, row.check_group)] = row
            if row.status in ("down", "critical", "error") or (row.finished_at is None and now - row.claimed_at > 60):
                out.failures.append({"target": row.target, "check_group": row.check_group, "slot": row.slot,
                                     "status": row.status or "unfinished", "attempts": row.attempts,
                                     "detail": row.detail})
        for (target, group_name), row in sorted(latest.items()):
            interval = groups[group_name].interval_s if group_name in groups else 0.0
            since = now - (row.finished_at or now)
            out.targets.append({"target": target, "check_group": group_name, "status": row.status,
                                "labels": json.loads(row.labels) if row.labels else {},
                                "lag_s": round((row.finished_at or now) - row.due_at, 2), "since_last_s": round(since, 1),
                                "behind": bool(interval) and since > 2 * interval})
    finally:
        store.close()
    out.failures.reverse()  # newest first
    out.unlisted = dict(expand(project).problems)  # a group nobody can list has no job and no row: say it
    return out


def prometheus(status: FleetStatus) -> str:
    """The status as Prometheus text: per target (with its fleet labels) up, lag and age of the last run."""
    def esc(v: object) -> str:
        return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    def labels(t: dict) -> str:
        pairs = {"target": t["target"], "check_group": t["check_group"],
                 **{k: v for k, v in t.get("labels", {}).items() if k not in ("target", "check_group")}}
        return ",".join(f'{k}="{esc(v)}"' for k, v in pairs.items())

    lines = ["# HELP civicq_fleet_workers Workers with a heartbeat row in the queue.", "# TYPE civicq_fleet_workers gauge",
             f"civicq_fleet_workers {len(status.workers)}",
             "# HELP civicq_fleet_jobs Jobs of the fleet queue by status.", "# TYPE civicq_fleet_jobs gauge"]
    lines += [f'civicq_fleet_jobs{{status="{esc(k)}"}} {v}' for k, v in sorted(status.queue.items())]
    lines += ["# HELP civicq_fleet_unlisted 1 for a group or target that cannot be listed now (no job runs for it).",
              "# TYPE civicq_fleet_unlisted gauge"]
    lines += [f'civicq_fleet_unlisted{{group="{esc(name)}"}} 1' for name in sorted(status.unlisted)]
    lines += ["# HELP civicq_fleet_target_up 1 when the target's last interval reached it.",
              "# TYPE civicq_fleet_target_up gauge"]
    lines += [f"civicq_fleet_target_up{{{labels(t)}}} {0 if t['status'] == 'down' else 1}" for t in status.targets]
    lines += ["# HELP civicq_fleet_target_lag_seconds From the last interval's due time to its end.",
              "# TYPE civicq_fleet_target_lag_seconds gauge"]
    lines += [f"civicq_fleet_target_lag_seconds{{{labels(t)}}} {t['lag_s']}" for t in status.targets]
    lines += ["# HELP civicq_fleet_target_last_run_age_seconds Since the target's last interval finished.",
              "# TYPE civicq_fleet_target_last_run_age_seconds gauge"]
    lines += [f"civicq_fleet_target_last_run_age_seconds{{{labels(t)}}} {t['since_last_s']}" for t in status.targets]
    return "\n".join(lines) + "\n"


def render(status: FleetStatus, fmt: str) -> str:
    if fmt == "prometheus":
        return prometheus(status)
    return json.dumps(status.to_dict(), indent=2) + "\n" if fmt == "json" else status.text()
