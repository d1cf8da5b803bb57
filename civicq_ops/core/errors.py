"""The exception hierarchy and the exit codes of DESIGN 8.

Library code raises these; only the CLI turns them into one line on stderr and an exit code.
A gate failure (1) and "the plan has actions" (4) are results, not exceptions.
"""

from __future__ import annotations

from enum import IntEnum

from civicq_ops.core.redaction import redact


class ExitCode(IntEnum):
    OK = 0
    GATE_FAILED = 1
    INVALID_INPUT = 2
    EXECUTION_ERROR = 3
    PLAN_HAS_ACTIONS = 4
    APPLY_REFUSED = 5


class CivicqError(Exception):
    """Base of every error civicq-ops reports to a user."""

    exit_code: ExitCode = ExitCode.EXECUTION_ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InputError(CivicqError):
    """Usage, config, schema or template errors: nothing was run."""

    exit_code = ExitCode.INVALID_INPUT


class ConfigError(InputError):
    """civicq-ops.yaml is missing, malformed, or names something that does not exist."""


class SchemaError(InputError):
    """A YAML file broke its JSON Schema or a semantic rule; carries every diagnostic."""

    def __init__(self, message: str, diagnostics: list | None = None) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics or []


class TemplateError(InputError):
    """A Jinja2 template failed to parse or render."""


class ExecutionError(CivicqError):
    """The database could not be reached, a query failed, or a tool failed."""

    exit_code = ExitCode.EXECUTION_ERROR


class TargetUnreachable(ExecutionError):
    """Connecting to a target failed (refused, wrong password, timeout)."""


class QueryFailed(ExecutionError):
    """A statement failed on the server."""


class LocalClusterError(ExecutionError):
    """The local embedded PostgreSQL could not be initialised, started or stopped."""


class MissingBinary(ExecutionError):
    """A PostgreSQL program (initdb, pg_dump, psql...) was not found or is too old."""


class PlanRefused(CivicqError):
    """apply refused a plan: stale, expired, another target, or a guard failed."""

    exit_code = ExitCode.APPLY_REFUSED


def first_line(exc: BaseException) -> str:
    """The server's primary message, without DETAIL/HINT lines, redacted."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if primary:
        return redact(primary)
    text = str(exc).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    # psycopg prefixes libpq's "connection to server at "H", port P failed: REASON" with
    # "connection failed: "; keep libpq's line (it names the host and port), not the hint after it.
    reason = lines[0]
    for prefix in ("connection failed: ", "connection is bad: "):
        reason = reason.removeprefix(prefix)
    if reason.rstrip().endswith("failed:") and len(lines) > 1:
        reason = f"{reason.rstrip()} {lines[1].strip()}"
    return redact(reason.strip())
