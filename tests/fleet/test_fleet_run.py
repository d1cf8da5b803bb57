"""`fleet run`: every target of the inventory, at most --jobs at once, each under its own bound;
a target that cannot be reached is a finding of that target, never a failed fleet run."""

from __future__ import annotations

import json
import socket
import time

from civicq_ops.config import load_project
from civicq_ops.core.errors import ExitCode
from civicq_ops.engine.run import Selection
from civicq_ops.fleet.run import DOWN_CHECK, FleetOptions, run_fleet
from tests.fleet.conftest import dead_url

CHEAP = Selection(checks=["connection-saturation", "database-size"])


def fleet_project(project_file, cluster, extra: str = ""):
    return load_project(project_file(
        "version: 1\nfleet:\n  groups:\n"
        f'    east: {{cluster: "{cluster.url()}", databases: "*", include: ["city_*"], city: "city_(.*)"}}\n' + extra), env={})


def test_every_target_of_the_fleet_is_checked_with_its_labels(project_file, fleet_cluster):
    result = run_fleet(fleet_project(project_file, fleet_cluster), FleetOptions(selection=CHEAP, jobs=4))
    assert len(result.outcomes) == 20
    assert all(o.down is None and len(o.findings) >= 2 for o in result.outcomes)
    doc = result.to_dict()
    assert doc["run"]["targets"] == 20
    assert {t["labels"]["city"] for t in doc["targets"]} == {f"{i:02d}" for i in range(20)}


def test_an_unreachable_target_is_a_finding_of_that_target_and_the_others_run(project_file, fleet_cluster, tmp_path):
    (tmp_path / "fleet.d").mkdir()
    (tmp_path / "fleet.d" / "t.yaml").write_text(f'targets:\n  gone: {{url: "{dead_url()}"}}\n')
    extra = "    west: {directory: fleet.d}\n" + f'    lost: {{cluster: "{dead_url()}", databases: "*"}}\n'
    result = run_fleet(fleet_project(project_file, fleet_cluster, extra), FleetOptions(selection=CHEAP, jobs=4))
    down = {o.name: o for o in result.outcomes if o.down}
    assert set(down) == {"west/gone", "lost"}
    assert [f.check for f in down["west/gone"].findings] == [DOWN_CHECK]
    assert down["west/gone"].findings[0].status == "critical"
    assert sum(1 for o in result.outcomes if not o.down) == 20
    assert result.exit_code == ExitCode.GATE_FAILED  # a finding, not an execution error (3)
    assert {o.name for o in result.worst(2)} == {"west/gone", "lost"}
    assert "worst targets:\n  west/gone" in result.text() or "worst targets:\n  lost" in result.text()


def test_a_target_that_does_not_answer_is_bounded_by_the_per_target_timeout(project_file, fleet_cluster, tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)  # accepts TCP connections into its backlog, never answers
    try:
        port = silent.getsockname()[1]
        (tmp_path / "fleet.d").mkdir()
        (tmp_path / "fleet.d" / "t.yaml").write_text(f'targets:\n  mute: {{url: "postgresql://x:y@127.0.0.1:{port}/db"}}\n')
        t0 = time.monotonic()
        result = run_fleet(fleet_project(project_file, fleet_cluster, "    west: {directory: fleet.d}\n"),
                           FleetOptions(selection=CHEAP, jobs=4, timeout_s=2))
        assert time.monotonic() - t0 < 15
    finally:
        silent.close()
    down = [o for o in result.outcomes if o.down]
    assert [o.name for o in down] == ["west/mute"]
    assert sum(1 for o in result.outcomes if not o.down) == 20


def test_fleet_run_from_the_command_line_names_the_worst_targets(cli, project_file, fleet_cluster, tmp_path):
    path = project_file("version: 1\nfleet:\n  groups:\n"
                        f'    east: {{cluster: "{fleet_cluster.url()}", databases: "*", include: ["city_0*"]}}\n'
                        f'    lost: {{cluster: "{dead_url()}", databases: "*"}}\n')
    r = cli("--config", str(path), "fleet", "run", "--check", "database-size", "--jobs", "3", "-f", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["run"]["targets"] == 11 and doc["worst"] == ["lost"]
    listed = cli("--config", str(path), "fleet", "list", "-f", "json")
    assert len(json.loads(listed.stdout)["targets"]) == 10


def test_the_markdown_fleet_report_lists_targets_worst_first_with_labels_and_every_problem(cli, project_file,
                                                                                          fleet_cluster):
    path = project_file("version: 1\nfleet:\n  groups:\n"
                        f'    east: {{cluster: "{fleet_cluster.url()}", databases: "*", include: ["city_0*"], '
                        'city: "city_(.*)"}\n'
                        f'    lost: {{cluster: "{dead_url()}", databases: "*"}}\n')
    r = cli("--config", str(path), "fleet", "run", "--check", "database-size", "--jobs", "3", "-f", "markdown")
    assert r.exit_code == 1, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "### civicq-ops fleet: gate **failed** (`--fail-on critical`)"
    assert "11 target(s)" in lines[2] and "1 down" in lines[2]
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| target")
            and not line.startswith("| status")]
    target_rows = [row for row in rows if row.endswith(" s |")]
    assert len(target_rows) == 11
    assert target_rows[0].startswith("| lost (down) |")  # the worst first: one critical
    assert "city=00" in r.stdout and "cluster=" in r.stdout
    problems = [row for row in rows if row.startswith(("| critical ", "| warning ", "| error "))]
    assert problems[0].startswith("| critical | lost | `fleet-target-down`")
