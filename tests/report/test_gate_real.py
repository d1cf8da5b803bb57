"""The gate as CI runs it, on real PostgreSQL 15 and 18: numbers that once crashed the text report,
outputs written independently, a reader that closes the pipe, selections that select nothing,
unreachable targets, and baselines that follow the server rather than the target's name."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from datetime import date, timedelta
from xml.etree import ElementTree as ET

import pytest

from tests.cli import test_run_checks
from tests.fixtures.pg import REPO, run_on

FIVE = test_run_checks.FIVE
problem_db = test_run_checks.problem_db  # an invalid index (warning) and a nearly used-up sequence (critical)

CONFIG = str(REPO / "civicq-ops.yaml")


def run(cli, database, *args, env=None):
    return cli("--config", CONFIG, "run", "checks", *args, env={"CIVICQ_DATABASE_URL": database.url, **(env or {})})


# 1. Grouped numbers (1,444; 5,000) in the text report.
def test_verbose_run_of_the_whole_catalogue_renders(cli, db):
    result = run(cli, db, "--verbose")
    assert result.exit_code in (0, 1), result.output
    assert "unexpected" not in result.stderr
    assert re.search(r"\d,\d{3}", result.stdout), "a fresh cluster has values of 1,000 and more"


# 2. One failing output loses nothing else.
def test_a_failed_output_is_named_and_the_others_written(cli, problem_db, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    result = run(cli, problem_db, "--check", FIVE, "-o", f"junit={blocked}/r.xml", "-o", f"json={tmp_path / 'r.json'}")
    assert result.exit_code == 3
    assert f"error: output junit={blocked}/r.xml was not written" in result.stderr
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["critical"] == 1
    assert "CRITICAL  sequence-exhaustion" in result.stdout


# 3. A reader that closes the pipe.
def test_a_closed_pipe_ends_quietly_with_the_gate_exit_code(problem_db, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    env["CIVICQ_DATABASE_URL"] = problem_db.url
    cmd = [sys.executable, "-m", "civicq_ops", "--config", CONFIG, "run", "checks", "--check", FIVE,
           "-o", f"json={tmp_path / 'r.json'}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    proc.stdout.close()  # the reader is gone before the report is written
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1, stderr  # the gate's own code: the sequence is critical
    assert stderr == ""
    assert (tmp_path / "r.json").exists()
    shell = subprocess.run(["bash", "-c", "set -o pipefail; " + shlex.join(cmd[:-2] + ["--verbose"]) + " | head -1"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert shell.stderr == "" and shell.stdout.startswith("== ")


# 4. Selections that select nothing are invalid input.
@pytest.mark.parametrize("args, message", [
    (["--tag", "nosuchtag"], "unknown tag nosuchtag"),
    (["--category", "vacum"], "unknown category vacum (did you mean 'vacuum'?)"),
    (["--check", "table-dead-tupels"], "unknown check table-dead-tupels (did you mean 'table-dead-tuples'?)"),
    (["--category", "bloat", "--check", "table-dead-tuples"],
     "--check table-dead-tuples and --category bloat together select no check"),
])
def test_a_selection_of_nothing_is_exit_2(cli, db, args, message):
    result = run(cli, db, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stdout == ""


def test_help_says_how_selectors_combine(cli):
    text = " ".join(cli("run", "checks", "--help").stdout.split())
    assert "different kinds intersect" in text and "union" in text


# The seed's monitor and index targets list every row of the listing their name says (issue 17.3:
# `civicq-ops inspect`), so none can run nothing and pass (issue 12.4).
MAKE_TARGETS = {
    "monitor-connections": "connections",
    "monitor-slow-queries": "slow-queries",
    "monitor-locks": "locks",
    "monitor-cache": "cache",
    "monitor-bloat": "bloat",
    "monitor-autovacuum": "autovacuum",
    "indexes-unused": "indexes",
    "indexes-missing": "index-usage",
    "indexes-usage": "indexes",
}


@pytest.mark.parametrize("target", sorted(MAKE_TARGETS))
def test_make_targets_select_what_their_names_say(target):
    from civicq_ops.inspect.listings import LISTINGS

    dry = subprocess.run(["make", "-s", "-n", "-o", ".venv/.installed", target], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    line = next(ln for ln in dry.splitlines() if " inspect " in ln)
    listing = shlex.split(line.split(" inspect ", 1)[1])[0]
    assert listing == MAKE_TARGETS[target] and listing in LISTINGS


# 6. An unreachable database in JUnit and in the summary.
def test_unreachable_database_is_an_error_testcase_and_counted(cli, tmp_path):
    env = {"CIVICQ_DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/x?connect_timeout=2"}
    result = cli("--config", CONFIG, "run", "checks", "--format", "junit", "-o", f"text={tmp_path / 'r.txt'}", env=env)
    assert result.exit_code == 3
    root = ET.fromstring(result.stdout)
    cases = root.findall(".//testcase")
    assert len(cases) == 1 and cases[0].get("name") == "target[env]" and cases[0].find("error") is not None
    assert "error=1" in (tmp_path / "r.txt").read_text().splitlines()[-1]


# 19. Baselines follow the server and database, whatever the target is called.
def test_baseline_matches_the_same_database_under_another_target_name(cli, problem_db, tmp_path):
    config = tmp_path / "named.yaml"
    config.write_text(f"version: 1\npaths: {{checks: ['{REPO / 'checks'}']}}\ntargets:\n  prod: {{url: '{problem_db.url}'}}\n")
    base = tmp_path / "base.json"
    wrote = cli("--config", str(config), "--target", "prod", "baseline", "write", str(base), "--check", FIVE)
    assert wrote.exit_code == 0 and "2 accepted" in wrote.stdout
    entries = json.loads(base.read_text())["findings"].values()
    by_check = {e["check"]: e for e in entries}
    assert by_check["sequence-exhaustion"]["status"] == "critical" and by_check["sequence-exhaustion"]["value"] > 0.9
    assert by_check["invalid-index"]["status"] == "warning" and by_check["invalid-index"]["server"]
    same = run(cli, problem_db, "--check", FIVE, "--fail-on", "warning", "--baseline", str(base), "--format", "json")
    assert same.exit_code == 0, same.output
    states = [f["baseline"]["state"] for f in json.loads(same.stdout)["findings"] if f["baseline"]]
    assert states == ["unchanged", "unchanged"]
    with problem_db.connect() as conn:
        conn.execute("CREATE TABLE later (id serial PRIMARY KEY)")
        conn.execute("SELECT setval('later_id_seq', 2100000000)")
    newer = run(cli, problem_db, "--check", FIVE, "--baseline", str(base), "--format", "github")
    assert newer.exit_code == 1
    first = next(ln for ln in newer.stdout.splitlines() if ln.startswith("::error"))
    assert "public.later_id_seq (new) fails the gate" in first


def test_an_old_baseline_file_is_still_honoured(problem_db, tmp_path):
    first = run_on(problem_db, FIVE.split(","), fail_on="warning")
    old = {"format_version": "1.0", "findings": {
        f.id: {"check": f.check, "target": f.target, "subject": f.subject, "status": f.status}
        for f in first.findings if f.status in ("warning", "critical")}}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    again = run_on(problem_db, FIVE.split(","), fail_on="warning", baseline=str(path))
    assert again.exit_code == 0 and set(again.comparison.states.values()) == {"unchanged"}


def test_a_baseline_of_an_unknown_format_says_to_write_it_again(problem_db, tmp_path):
    from civicq_ops.core.errors import InputError

    path = tmp_path / "future.json"
    path.write_text(json.dumps({"format_version": "9.0", "findings": {}}))
    with pytest.raises(InputError, match="write it again"):
        run_on(problem_db, ["invalid-index"], baseline=str(path))


def test_waiver_notices_reach_github_on_a_real_run(cli, problem_db, tmp_path):
    waivers = tmp_path / "policies"
    waivers.mkdir()
    expires = date.today() + timedelta(days=30)
    (waivers / "w.yaml").write_text("version: 1\nwaivers:\n  - check: invalid-index\n    subject: {indexname: gone}\n"
                                    f"    reason: The index was dropped last week\n    owner: dba\n    expires: {expires}\n")
    config = tmp_path / "w.yaml"
    config.write_text(f"version: 1\npaths: {{checks: ['{REPO / 'checks'}'], policies: ['{waivers}']}}\n")
    result = cli("--config", str(config), "run", "checks", "--check", "invalid-index", "--format", "github",
                 env={"CIVICQ_DATABASE_URL": problem_db.url})
    assert any(ln.startswith("::notice file=") and "waiver-stale" in ln for ln in result.stdout.splitlines()), result.output


def test_a_crashing_text_report_still_writes_the_json_file(problem_db, tmp_path, monkeypatch):
    """The reported case: the text renderer crashed and `-o json=FILE` wrote nothing."""
    from typer.testing import CliRunner

    from civicq_ops.cli.app import app
    from tests.report.runs import break_format

    break_format(monkeypatch, "text", "invalid literal for int() with base 10: '5,000'")
    monkeypatch.setenv("CIVICQ_DATABASE_URL", problem_db.url)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, ["--config", CONFIG, "run", "checks", "--check", FIVE, "-o", f"json={out}"])
    assert result.exit_code == 3
    assert "error: output text (standard output) was not written: ValueError" in result.output
    assert json.loads(out.read_text())["run"]["exit_code"] == 1
