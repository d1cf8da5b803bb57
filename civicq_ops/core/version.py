"""PostgreSQL versions and version requirements (`>=13,<17`)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Version:
    """A PostgreSQL version as (major, minor); 9.6-style majors are not supported."""

    major: int
    minor: int = 0

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    @classmethod
    def parse(cls, text: str) -> Version:
        m = re.search(r"(\d+)(?:\.(\d+))?", text)
        if not m:
            raise ValueError(f"no version in {text!r}")
        return cls(int(m.group(1)), int(m.group(2) or 0))


_VERSION_CLAUSE = re.compile(r"^\s*(>=|<=|>|<|==|=)?\s*(\d+)(?:\.(\d+))?\s*$")


def version_matches(spec: str, version: Version) -> bool:
    """'>=13', '<17', '>=13,<17', '14.4'; a bare major compares majors only."""
    for clause in spec.split(","):
        m = _VERSION_CLAUSE.match(clause)
        if not m:
            raise ValueError(f"bad version requirement {clause!r}")
        op, major, minor = m.group(1) or "==", int(m.group(2)), m.group(3)
        have = (version.major, version.minor) if minor is not None else (version.major,)
        want = (major, int(minor)) if minor is not None else (major,)
        ok = {">=": have >= want, "<=": have <= want, ">": have > want, "<": have < want,
              "==": have == want, "=": have == want}[op]
        if not ok:
            return False
    return True
