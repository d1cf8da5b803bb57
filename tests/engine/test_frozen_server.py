"""A server that stops answering mid-run never hangs civicq-ops (issue 11 point 7). A throwaway
cluster of its own (PostgreSQL 15 and 18) is frozen with SIGSTOP (every server process, so the
kernel keeps the sockets open and nothing answers), then resumed and stopped by PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from civicq_ops.catalog.model import Catalog, Check, Source
from civicq_ops.core.children import ChildTimeout, run_child
from civicq_ops.engine.run import RunOptions, Selection, run_checks
from tests.fixtures.pg import MAJORS, REPO, project_for, shipped_catalog, start_cluster, stop_cluster


def server_pids(cluster) -> list[int]:
    postmaster = int(cluster.local.pid_file.read_text().split()[0])
    pids, todo = [], [postmaster]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            todo.extend(int(c) for c in children)
    return pids


class Freezer:
    def __init__(self, cluster) -> None:
        self.cluster, self.stopped = cluster, []

    def freeze(self) -> None:
        for pid in server_pids(self.cluster):
            os.kill(pid, signal.SIGSTOP)
            self.stopped.append(pid)

    def thaw(self) -> None:
        for pid in self.stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.stopped = []


@pytest.fixture(params=list(MAJORS), ids=[f"pg{m}" for m in MAJORS])
def frozen(request):
    bin_dir, reason = MAJORS[request.param]
    if bin_dir is None:
        pytest.skip(reason)
    cluster = start_cluster(request.param, bin_dir)
    freezer = Freezer(cluster)
    try:
        yield cluster, freezer
    finally:
        freezer.thaw()
        stop_cluster(cluster)


def slow(check_id: str, seconds: float, timeout: str) -> Check:
    return Check.from_dict({"id": check_id, "title": "Slow", "category": "test", "value": "v", "timeout": timeout,
                            "query": f"SELECT pg_sleep({seconds}) IS NULL AS v"}, Source("slow.yaml", 1))


def test_a_server_frozen_mid_run_gives_the_findings_so_far_and_errors(frozen):
    cluster, freezer = frozen
    project, target = project_for(cluster.url("postgres"))
    shipped = shipped_catalog().checks
    checks = {"invalid-index": shipped["invalid-index"], "sequence-exhaustion": shipped["sequence-exhaustion"],
              "slow": slow("slow", 3, "2s"), "idle-in-transaction": shipped["idle-in-transaction"],
              "table-dead-tuples": shipped["table-dead-tuples"]}
    timer = threading.Timer(1.0, freezer.freeze)
    timer.start()
    started = time.monotonic()
    result = run_checks(project, [target], Catalog(checks=checks), Selection(), RunOptions(pool_size=1))
    took = time.monotonic() - started
    timer.join()
    assert took < 2 + 3 + 4, took  # the check's timeout, the grace, and slack for a loaded machine
    status = {f.check: f.status for f in result.findings}
    assert status["invalid-index"] == "ok" and status["sequence-exhaustion"] == "ok"  # gathered before
    slow_finding = next(f for f in result.findings if f.check == "slow")
    assert slow_finding.status == "error" and "did not answer" in slow_finding.reason
    later = [f for f in result.findings if f.check in ("idle-in-transaction", "table-dead-tuples")]
    assert later and all(f.status == "error" and "stopped answering" in f.reason for f in later)
    assert result.exit_code == 3


def test_run_checks_with_a_budget_ends_on_time_with_a_report(frozen, tmp_path):
    cluster, freezer = frozen
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    env["CIVICQ_DATABASE_URL"] = cluster.url("postgres")
    freezer.freeze()  # frozen before it even connects: connect_timeout is cut to the budget
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "civicq_ops", "--config", str(REPO / "civicq-ops.yaml"), "run",
                           "checks", "--budget", "4s", "--format", "json"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)
    took = time.monotonic() - started
    assert took < 4 + 3 + 6, took
    assert proc.returncode == 3, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["errors"] and "127.0.0.1:" in doc["errors"][0]["message"]
    assert "cannot connect to target 'env'" in proc.stderr  # errors are named on stderr too


def test_a_child_program_on_a_frozen_server_is_stopped_at_its_deadline(frozen):
    cluster, freezer = frozen
    kw = cluster.conninfo()
    env = {**os.environ, "PGPASSWORD": str(kw["password"])}
    pg_dump = Path(MAJORS[cluster.major][0]) / "pg_dump"
    freezer.freeze()
    started = time.monotonic()
    with pytest.raises(ChildTimeout, match=r"pg_dump did not finish within 2s"):
        run_child([pg_dump, "-h", "127.0.0.1", "-p", str(kw["port"]), "-U", str(kw["user"]), "-d", "postgres"],
                  timeout=2, env=env)
    assert time.monotonic() - started < 2 + 5 + 3


def test_budget_zero_is_refused(cli):
    result = cli("run", "checks", "--budget", "0s")
    assert result.exit_code == 2 and "--budget must be more than 0s" in result.stderr
