"""Asking before acting and showing progress: one way for every command.

A confirmation is asked only on a terminal; unattended (no TTY, or CI) a command that needs one is
refused with exit 5 unless `--yes` was given, and a "no" at the prompt is a refusal too (exit 5:
exit 1 is reserved for a failed gate). A production target needs its name instead: `--confirm NAME`
unattended, or the name typed at the prompt. Progress goes to stderr through rich, and only when stderr
is a terminal, so logs and pipes get no `\\r` noise.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import typer

from civicq_ops.core.errors import PlanRefused

ProgressFn = Callable[[str, int, int], None]


def attended() -> bool:
    """A person can answer a prompt: stdin is a terminal and this is not a CI job."""
    return sys.stdin.isatty() and not os.environ.get("CI")


def confirm_or_refuse(question: str, *, yes: bool, unattended_hint: str = "pass --yes", name: str | None = None,
                      confirm: str | None = None) -> None:
    """Return when the action may go ahead; raise PlanRefused (exit 5) otherwise.

    With `name` (a production target), only the name itself confirms: `--confirm NAME`, or NAME typed
    at the prompt; `--yes` alone is not enough."""
    if name is not None:
        _confirm_named(question, name, confirm)
        return
    if yes:
        return
    if not attended():
        raise PlanRefused(f"{question.rstrip('?')}: needs a terminal to confirm, or {unattended_hint}")
    if not typer.confirm(question):
        raise PlanRefused("declined at the prompt: nothing was done")


def _confirm_named(question: str, name: str, confirm: str | None) -> None:
    if confirm == name:
        return
    hint = f"target '{name}' is production: confirm with --confirm {name} (--yes is not enough)"
    if confirm is not None:
        raise PlanRefused(f"--confirm {confirm} does not name the target: {hint}")
    if not attended():
        raise PlanRefused(f"{question.rstrip('?')}: {hint}")
    if typer.prompt(f"{question} Type the target name ({name}) to confirm", default="", show_default=False) != name:
        raise PlanRefused(f"the name typed is not {name}: nothing was done")


class progress:
    """`with progress(quiet, "tables") as show:` gives a `show(label, done, total)` callback, or None.

    The bar appears only after a second, so quick commands print nothing extra.
    """

    def __init__(self, quiet: bool, unit: str) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.unit = unit
        self.start = time.monotonic()
        self.bar: Any = None  # a rich Progress once shown (rich is imported only then)
        self.task: Any = None

    def __enter__(self) -> ProgressFn | None:
        return self.update if self.enabled else None

    def update(self, label: str, done: int, total: int) -> None:
        if time.monotonic() - self.start < 1.0:
            return
        if self.bar is None:
            # rich is imported only when a bar is really shown (it costs ~40 ms at start-up).
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(transient=True, console=Console(stderr=True))
            self.bar.start()
            self.task = self.bar.add_task(self.unit, total=total)
        self.bar.update(self.task, completed=done, description=f"{self.unit}: {label[:40]}")

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
