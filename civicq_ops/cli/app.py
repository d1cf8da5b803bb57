"""The `civicq-ops` entry point: imports only what the command line needs.

`civicq-ops --version` answers without importing Typer or any command; other command lines import
the command module that provides their command (found from the first word after the global
options), and a command line without a known command (`--help`, a typo) imports them all.
COMMANDS is checked against the modules' own registrations by tests/cli/test_lazy_start.py.
"""

from __future__ import annotations

import sys
from typing import Any

# The command modules of civicq_ops.cli, in the order of `civicq-ops --help`.
MODULES = ("db", "backup", "run", "catalog", "remediate", "vacuum", "watch", "inspect_cmd", "report_cmd", "review",
           "fleet")

# Top-level command (or group) -> the module that registers it.
COMMANDS = {
    "db": "db",
    "restore": "backup", "backup": "backup", "wal": "backup",
    "health": "run", "run": "run", "baseline": "run",
    "validate": "catalog", "schema": "catalog", "test": "catalog", "checks": "catalog",
    "plan": "remediate", "apply": "remediate", "audit": "remediate", "history": "remediate",
    "vacuum": "vacuum", "analyze": "vacuum", "vacuum-candidates": "vacuum", "vacuum-auto": "vacuum",
    "watch": "watch",
    "inspect": "inspect_cmd",
    "report": "report_cmd",
    "diff": "review",
    "fleet": "fleet",
}

_VALUED = {"--config", "-c", "--target", "-t"}  # global options that take a value


def command_of(argv: list[str]) -> tuple[str | None, bool]:
    """(the first word after the global options, whether --version is among those options)."""
    version = False
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--version":
            version = True
        elif arg in _VALUED:
            skip = True
        elif arg == "--" or not arg.startswith("-"):
            return (None if arg == "--" else arg), version
    return None, version


def modules_for(argv: list[str]) -> tuple[str, ...]:
    command, _ = command_of(argv)
    return (COMMANDS[command],) if command in COMMANDS else MODULES


def main() -> None:
    """Console entry point."""
    argv = sys.argv[1:]
    _, version = command_of(argv)
    if version:  # as the eager --version option does, without loading the app
        from civicq_ops import __version__

        sys.stdout.write(f"civicq-ops {__version__}\n")
        return
    from civicq_ops.cli.root import build

    build(modules_for(argv))(prog_name="civicq-ops")


def __getattr__(name: str) -> Any:
    """`app`: the whole app, every command registered (tests and tools that import it)."""
    if name == "app":
        from civicq_ops.cli.root import build

        app = build(MODULES)
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
