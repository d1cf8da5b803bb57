"""Diagnostics: one problem in one file, at one line and column, with a stable code."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True, order=True)
class Diagnostic:
    """A problem found while loading or validating a file.

    Sorted by file, then position, so a report reads top to bottom. Line and column are 1-based;
    0 means the problem concerns the file as a whole.
    """

    path: str
    line: int
    col: int
    code: str
    message: str
    level: str = "error"  # error | warning | notice
    hint: str | None = field(default=None, compare=False)

    def format(self) -> str:
        text = f"{self.path}:{self.line}:{self.col}: {self.level}[{self.code}]: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_dict(self) -> dict:
        return asdict(self)


def errors_in(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.level == "error"]
