"""Helpers shared by commands: output options and the catalog of the current project."""

from __future__ import annotations

import sys

import typer

from civicq_ops.core.errors import ExitCode


def emit(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def colour_on() -> bool:
    import os

    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def parse_params(specs: list[str] | None) -> dict[str, dict[str, str]]:
    """["table-dead-tuples.min_live_tuples=10"] -> {"table-dead-tuples": {"min_live_tuples": "10"}}."""
    from civicq_ops.core.errors import InputError

    out: dict[str, dict[str, str]] = {}
    for spec in specs or []:
        key, sep, value = spec.partition("=")
        check, dot, name = key.rpartition(".")
        if not sep or not dot or not check or not name:
            raise InputError(f"--param expects CHECK.PARAM=VALUE, got '{spec}'")
        out.setdefault(check, {})[name] = value
    return out


def exit_with(code: ExitCode) -> None:
    """End the command with `code` (core/errors.py ExitCode); OK returns normally."""
    if code != ExitCode.OK:
        raise typer.Exit(int(code))
