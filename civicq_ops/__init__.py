"""civicq-ops: a declarative operations runner for PostgreSQL, built for the CivicQ database.

The library is importable without the CLI; heavy dependencies load lazily so that
`civicq-ops --version` stays fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
