"""Every command shown in the guides runs: each fenced ```sh block carries the marker `run`
(```sh run) and its lines are run, in order, against a real seeded database. A block without the
marker fails the test, so no command can be shown without being run.

A line may end with `# exit: 0,1` to allow other exit codes (a gate that fails is exit 1).
`make TARGET` lines run the repository's Makefile; every other line runs in a project folder of
the test's own (civicq-ops.yaml with the repo's checks, state and backups in the folder).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = ["docs/DATABASE_GUIDE.md", "docs/OPTIMIZATION_GUIDE.md", "docs/QUICK_REFERENCE.md", "README.md"]
FENCE = re.compile(r"^```(\S*)([^\n]*)\n(.*?)^```", re.M | re.S)


def shell_blocks(path: Path) -> list[tuple[int, str, str]]:
    """(line, marker, body) of every ```sh block."""
    text = path.read_text()
    out = []
    for m in FENCE.finditer(text):
        if m.group(1) in ("sh", "bash", "shell", "console"):
            out.append((text[:m.start()].count("\n") + 1, m.group(2).strip(), m.group(3)))
    return out


def commands(body: str) -> list[tuple[str, set[int]]]:
    out = []
    for raw in body.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        codes = {0}
        m = re.search(r"\s+# exit: ([0-9, ]+)$", line)
        if m:
            codes = {int(c) for c in m.group(1).split(",")}
            line = line[:m.start()]
        else:
            line = re.sub(r"\s+#.*$", "", line)
        out.append((line, codes))
    return out


@pytest.mark.parametrize("doc", DOCS[:3])
def test_guides_show_only_marked_sh_blocks(doc):
    blocks = shell_blocks(REPO / doc)
    assert blocks, f"{doc} shows no commands"
    unmarked = [line for line, marker, _ in blocks if marker != "run"]
    assert not unmarked, f"{doc}: ```sh blocks without the `run` marker at lines {unmarked}"


def test_readme_troubleshooting_commands_are_marked():
    text = (REPO / "README.md").read_text()
    assert "## Troubleshooting" in text
    section = text.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    assert "```sh run" in section


@pytest.mark.parametrize("pg_cluster", ["18"], indirect=True)
@pytest.mark.parametrize("doc", DOCS)
def test_every_command_in_the_docs_runs(doc, civicq_db, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "civicq-ops.yaml").write_text(
        f"version: 1\npaths: {{checks: [{REPO / 'checks'}], policies: [{REPO / 'policies'}]}}\n"
        # CIVICQ_DATABASE_URL is a production target unless the project says otherwise: the guides
        # seed and reset a development database.
        "targets: {env: {url: '${CIVICQ_DATABASE_URL}', environment: development}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVICQ_", "PG"))}
    env.update(CIVICQ_DATABASE_URL=civicq_db.url, CIVICQ_CONFIG=str(project / "civicq-ops.yaml"),
               PATH=f"{REPO / '.venv' / 'bin'}:{env.get('PATH', '')}", NO_COLOR="1", CI="1")
    ran = 0
    for line_no, marker, body in shell_blocks(REPO / doc):
        if marker != "run":
            continue
        for command, codes in commands(body):
            if command.startswith("make "):
                command = f"make -s -C {REPO} {command[5:]}"
            proc = subprocess.run(["bash", "-c", command], cwd=project, env=env, capture_output=True, text=True,
                                  timeout=300)
            assert proc.returncode in codes, (
                f"{doc}:{line_no}: `{command}` exited {proc.returncode}\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
            assert "Traceback" not in proc.stderr, f"{doc}:{line_no}: `{command}`\n{proc.stderr[-1500:]}"
            ran += 1
    assert ran, f"{doc} ran no command"


def test_make_help_lists_every_target_on_one_line():
    makefile = (REPO / "Makefile").read_text()
    targets = {m.group(1) for m in re.finditer(r"^([a-z][a-z0-9-]*):", makefile, re.M)}
    proc = subprocess.run(["make", "-s", "-C", str(REPO), "help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    listed = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("make ")]
    assert sorted(set(listed)) == sorted(listed), "a target is listed twice"
    assert set(listed) == targets, (set(listed) ^ targets)


def test_monitor_and_index_targets_call_inspect():
    makefile = (REPO / "Makefile").read_text()
    for m in re.finditer(r"^((?:monitor|indexes)-[a-z-]+):.*\n\t(.*)$", makefile, re.M):
        assert " inspect " in m.group(2), m.group(1)


def test_make_weekly_checks_health_before_its_restore_test():
    """A restore forces checkpoints, counted as requested: health must not judge the weekly job's own work."""
    makefile = (REPO / "Makefile").read_text()
    weekly = makefile.split("\nweekly:", 1)[1].split("\n\n", 1)[0]
    assert weekly.index("health --full") < weekly.index("verify --latest --restore")
