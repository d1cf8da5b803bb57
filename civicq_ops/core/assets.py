"""The folders civicq-ops ships beside its code: the default checks and policies, and the CivicQ
database's migrations, sql and seeds.

In this repository they are top-level folders (checks/, policies/, migrations/, sql/, seeds/).
A wheel carries copies under civicq_ops/_data/ (setup.py's build step copies them there), so a
team that pip-installed civicq-ops has them too. Lookup: the installed copy first, else the
repository (a source checkout or an editable install).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

ASSETS = ("checks", "policies", "migrations", "sql", "seeds")
REPO_ROOT = Path(__file__).resolve().parents[2]


def shipped_dir(name: str) -> Path | None:
    """The shipped folder `name` (one of ASSETS), or None when this installation has none."""
    if name not in ASSETS:
        raise KeyError(name)
    installed = Path(str(resources.files("civicq_ops"))) / "_data" / name
    if installed.is_dir():
        return installed
    in_repo = REPO_ROOT / name
    return in_repo if in_repo.is_dir() else None
