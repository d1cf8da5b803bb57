"""The default gate passes on a healthy database (issue 12, "done when"): the seeded CivicQ database
plus a pgbench load and a normal pgbench workload, checked as a user would (`run checks`, no options,
twice: the second run judges the cache ratios over the activity between the runs). A false alarm
here is a gate nobody can keep on."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date, timedelta

from tests.fixtures.pg import REPO


def _pgbench(db, *args: str) -> None:
    kw = db.conninfo
    env = dict(os.environ, PGPASSWORD=str(kw["password"]))
    cmd = [str(db.cluster.local.bin_dir / "pgbench"), "-h", str(kw["host"]), "-p", str(kw["port"]),
           "-U", str(kw["user"]), *args, db.name]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)


def test_the_default_gate_passes_on_a_healthy_exercised_database(civicq_db, cli, tmp_path):
    _pgbench(civicq_db, "-i", "-q", "-s", "2")
    _pgbench(civicq_db, "-c", "2", "-j", "2", "-T", "4", "-n")
    # The throwaway test clusters run with fsync and full_page_writes off for speed: accepted as a
    # team would accept them, with a waiver (owner, reason, expiry), not by weakening the check.
    expires = (date.today() + timedelta(days=30)).isoformat()
    (tmp_path / "waivers.yaml").write_text(
        "version: 1\nwaivers:\n" + "".join(
            f"  - {{check: settings-review, subject: {{name: {name}}}, owner: ci, expires: '{expires}',\n"
            f"     reason: the throwaway test cluster runs without crash safety for speed}}\n"
            for name in ("fsync", "full_page_writes")))
    config = tmp_path / "civicq-ops.yaml"
    config.write_text(
        "version: 1\n"
        f"paths: {{checks: ['{REPO / 'checks'}'], policies: ['{REPO / 'policies'}', '{tmp_path / 'waivers.yaml'}']}}\n"
        "targets: {db: {url: '${DB_URL}', environment: staging}}\ndefault_target: db\n")
    env = {"DB_URL": civicq_db.url}
    for attempt in ("first", "second"):
        result = cli("--config", str(config), "run", "checks", "--format", "json", env=env)
        report = json.loads(result.stdout)
        failing = [f"{f['check']} {f.get('subject')}: {f.get('message') or f.get('reason')}"
                   for f in report["findings"] if f["status"] in ("critical", "error") and not f.get("waived")]
        assert result.exit_code == 0 and not failing, f"{attempt} run: exit {result.exit_code}\n" + "\n".join(failing)
        _pgbench(civicq_db, "-c", "2", "-j", "2", "-T", "2", "-n", "-S")  # reads between the runs
