"""What the global options say, shared by every command module (kept apart from app.py so that
each command module imports on its own)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

from civicq_ops.core.errors import InputError
from civicq_ops.core.redaction import redact

if TYPE_CHECKING:
    from civicq_ops.config import Project, Target


@dataclass
class Session:
    """What the global options say; the project file is loaded on first use."""

    config_path: str | None = None
    target_names: list[str] = field(default_factory=list)
    all_targets: bool = False
    debug: bool = False
    quiet: bool = False
    _project: Project | None = None

    @property
    def project(self) -> Project:
        if self._project is None:
            # Imported on first use: the project loader pulls in the YAML reader and the schema
            # validator, which `--help` and `--version` never need.
            from civicq_ops.config import load_project

            self._project = load_project(self.config_path)
        return self._project

    def target(self) -> Target:
        """The one target this command works on (`--target`, else the default)."""
        names = self.target_names
        if len(names) > 1 or self.all_targets:
            raise_usage("this command works on one target; pass a single --target")
        return self.project.target(names[0] if names else None)

    def targets(self) -> list[Target]:
        if self.all_targets:
            return [self.project.target(n) for n in self.project.target_names]
        if not self.target_names:
            return [self.project.target()]
        return [self.project.target(n) for n in self.target_names]


def session_of(ctx: typer.Context) -> Session:
    """The Session the root callback put on the context (every command runs below it)."""
    found = ctx.find_object(Session)
    if found is None:
        raise RuntimeError("a civicq-ops command ran outside the root app (no Session on its context)")
    return found


def raise_usage(message: str) -> None:
    raise InputError(message)


def report_notice(message: str) -> None:
    typer.echo(f"notice: {redact(message)}", err=True)


def report_error(message: str, hint: str | None = None) -> None:
    typer.echo(f"error: {redact(message)}", err=True)
    if hint:
        typer.echo(f"hint: {redact(hint)}", err=True)
