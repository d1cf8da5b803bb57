"""Shell completion is on; `--help` shows no typer type labels (`<bool>`, `<str>`, `<list[str]>`)
and each command's --format help names every format the command accepts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from civicq_ops.cli.app import app

BIN = Path(sys.executable).parent
LABEL = re.compile(r"<(bool|str|int|float|list\[[a-z]+\])>")


def commands():
    def walk(cmd, path):
        if path:
            yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(app), []))


def test_no_help_shows_a_type_label():
    runner = CliRunner()
    noisy = []
    for path in [[], *[p for p, _ in commands()]]:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        noisy += [f"{' '.join(path) or 'civicq-ops'}: {m.group(0)}" for m in LABEL.finditer(result.output)]
    assert noisy == []


def test_flags_show_no_value_and_options_name_theirs():
    text = CliRunner().invoke(app, ["run", "checks", "--help"], env={"COLUMNS": "200"}).output
    assert re.search(r"--verbose\s+-v\s+List ok findings too", text)
    assert re.search(r"--format\s+-f\s+FORMAT\s", text) and re.search(r"--pool\s+INTEGER\s", text)


def test_every_format_a_command_accepts_is_in_its_help(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "civicq-ops.yaml").write_text("version: 1\ntargets: {t: {url: 'postgresql://u@127.0.0.1:1/x'}}\n")
    runner = CliRunner()
    checked, missing = [], []
    for path, cmd in commands():
        option = next((p for p in cmd.params if "--format" in getattr(p, "opts", [])), None)
        if option is None:
            continue
        required = ["x" for p in cmd.params if p.required and p.param_type_name == "argument"]
        result = runner.invoke(app, [*path, "--format", "no-such-format", *required])
        found = re.search(r"(?:must be one of|choose from) (.+?)(?:, not '|\)|$)", result.output, re.M)
        if not found:
            continue  # checked later than the target (db status, backup create): their help is read by eye
        accepted = [v.strip() for v in found.group(1).replace(" or ", ", ").split(",") if v.strip()]
        checked.append(" ".join(path))
        missing += [f"{' '.join(path)}: {v}" for v in accepted if not re.search(rf"\b{re.escape(v)}\b", option.help)]
    assert missing == []
    assert {"run checks", "validate", "plan", "plan show", "diff", "report", "audit", "checks list"} <= set(checked)


def complete(words: str) -> list[str]:
    cword = len(words.split()) - 1
    result = subprocess.run([str(BIN / "civicq-ops")], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            timeout=60, env={"_CIVICQ_OPS_COMPLETE": "complete_bash", "COMP_WORDS": words,
                                             "COMP_CWORD": str(cword), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_shell_completion_completes_commands_and_subcommands():
    assert "plan" in complete("civicq-ops pl")
    assert complete("civicq-ops plan s") == ["show"]
    assert {"--format", "--fail-on"} <= set(complete("civicq-ops run checks --f"))


def test_show_completion_prints_the_script_for_the_calling_shell():
    # The shell is detected from the process tree: bash stays the parent (no exec) as at a terminal.
    result = subprocess.run(["bash", "-c", f"{BIN / 'civicq-ops'} --show-completion; exit $?"], capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 0 and "_civicq_ops_completion" in result.stdout, result.stderr
