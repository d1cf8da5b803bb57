"""The collector in a command (cli/collector.py): off while modules load, on for the command's own
objects, so a long command (watch, fleet) still frees its reference cycles."""

from __future__ import annotations

import gc

from civicq_ops.cli import collector


class _Node:
    pass


def test_what_loads_is_frozen_and_the_collector_is_on_again():
    frozen = gc.get_freeze_count()
    with collector.loading():
        assert not gc.isenabled()
        kept = [_Node() for _ in range(100)]
    try:
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + len(kept)
    finally:
        gc.unfreeze()


def test_a_collector_turned_off_by_the_caller_stays_off():
    gc.disable()
    try:
        with collector.loading():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()
