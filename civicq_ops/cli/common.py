"""Helpers shared by commands: output options and the catalog of the current project."""

from __future__ import annotations

import sys

import typer

from civicq_ops.core.errors import ExitCode


def emit(text: str) -> None:
    """Write to standard output; a reader that went away (`| head`) ends the output quietly, as
    other Unix tools do, and the command goes on (files still written, the gate's exit code kept)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()


def silence_stdout() -> None:
    """Point standard output at /dev/null, so Python's final flush cannot complain about the pipe."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


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


def one_of(option: str, value: str, allowed: tuple[str, ...]) -> str:
    """An option value from a closed set, or exit 2 naming the choices (never a silent fallback)."""
    if value not in allowed:
        from civicq_ops.core.errors import InputError  # lazy like the rest of the CLI (start-up time)

        raise InputError(f"{option} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def not_blank(option: str, value: str | None) -> str | None:
    """None (the option was not given) or a non-blank value; '' is exit 2, never "use the default"."""
    if value is not None and not value.strip():
        from civicq_ops.core.errors import InputError  # lazy like the rest of the CLI (start-up time)

        raise InputError(f"{option} needs a value: leave the option out for the default")
    return value
