"""The cyclic garbage collector in a short command.

Start-up (Typer, psycopg, Jinja, the command's modules) makes a few hundred thousand objects that
live until the process ends; the collector traverses them again at every full collection, and once
more at exit: ~70 ms of a 0.3 s `run checks` on a small database. So imports run with the collector
off, and what they made is frozen (moved out of its reach, as `gc.freeze()` documents for this
use); the collector stays on for the command's own objects, so a long `watch` or `fleet` command
frees its cycles as before. Nothing is freed later than it would be: frozen objects live until exit.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def loading() -> Iterator[None]:
    """Around imports and other set-up whose objects live until exit."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def before_exit() -> None:
    """Everything is left to the interpreter's exit, which then does not traverse it all again."""
    gc.freeze()
