"""A lean start: `--version` loads no command and not Typer; a command line loads the one module
that provides its command; COMMANDS (the map the entry point reads) matches what each module
registers."""

from __future__ import annotations

import subprocess
import sys

import typer

from civicq_ops.cli.app import COMMANDS, MODULES, command_of, modules_for
from civicq_ops.cli.root import build


def _loaded_after(*argv: str) -> set[str]:
    """The civicq_ops and heavy modules a fresh interpreter has loaded after `civicq-ops ARGV`."""
    code = ("import sys\nsys.argv = ['civicq-ops', *sys.argv[1:]]\nfrom civicq_ops.cli.app import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write('\\nLOADED ' + ' '.join(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    return set(proc.stderr.rpartition("LOADED ")[2].split())


def test_version_loads_neither_typer_nor_any_command():
    loaded = _loaded_after("--version")
    assert "civicq_ops.cli.app" in loaded
    assert not {"typer", "click", "psycopg", "jsonschema", "jinja2", "civicq_ops.cli.root"} & loaded


def test_a_command_loads_only_its_own_module():
    loaded = _loaded_after("run", "checks", "--help")
    assert "civicq_ops.cli.run" in loaded
    assert not {f"civicq_ops.cli.{m}" for m in MODULES if m != "run"} & loaded


def test_global_options_before_the_command_are_skipped():
    assert command_of(["-c", "x.yaml", "--target", "a,b", "--quiet", "validate", "checks/"]) == ("validate", False)
    assert command_of(["--config", "run", "--version"]) == (None, True)  # `run` is the value of --config
    assert modules_for(["--help"]) == MODULES and modules_for(["no-such-command"]) == MODULES


def test_the_command_map_matches_what_each_module_registers():
    for module in MODULES:
        app = build((module,))
        names = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
        names |= {g.name for g in app.registered_groups}
        assert names == {name for name, m in COMMANDS.items() if m == module}, module
    assert set(COMMANDS.values()) == set(MODULES)


def test_the_whole_app_still_has_every_command():
    from civicq_ops.cli.app import app

    assert isinstance(app, typer.Typer) and len(app.registered_commands) + len(app.registered_groups) == len(COMMANDS)
