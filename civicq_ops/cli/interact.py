"""Asking before acting and showing progress: one way for every command.

A confirmation is asked only on a terminal; unattended (no TTY, or CI) a command that needs one is
refused with exit 5 unless `--yes` was given, and a "no" at the prompt is a refusal too (exit 5:
exit 1 is reserved for a failed gate). Progress goes to stderr through rich, and only when stderr
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


def confirm_or_refuse(question: str, *, yes: bool, unattended_hint: str = "pass --yes") -> None:
    """Return when the action may go ahead; raise PlanRefused (exit 5) otherwise."""
    if yes:
        return
    if not attended():
        raise PlanRefused(f"{question.rstrip('?')}: needs a terminal to confirm, or {unattended_hint}")
    if not typer.confirm(question):
        raise PlanRefused("declined at the prompt: nothing was done")


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
