"""One watchdog thread keeps every client-side deadline (postgres/deadline.py): each fires on its own
connection, in time, never after its block ended, and a forked child never fires its parent's."""

from __future__ import annotations

import os
import threading
import time

from civicq_ops.postgres import deadline as d


class FakeConnection:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log, self.pgconn = name, log, None

    def cancel_safe(self, timeout: float) -> None:
        self.log.append(f"{os.getpid()}:{self.name}")


def test_each_deadline_fires_on_its_own_connection_and_only_if_its_block_is_still_running():
    log: list[str] = []
    with d.deadline(FakeConnection("long", log), 5.0):
        with d.deadline(FakeConnection("short", log), 0.1, grace=0.05) as short:
            time.sleep(0.4)
        with d.deadline(FakeConnection("done", log), 0.2) as done:
            pass
        time.sleep(0.3)
    assert short.fired and not done.fired
    assert log == [f"{os.getpid()}:short"]


def test_a_forked_child_never_fires_its_parents_deadlines():
    log: list[str] = []
    started = threading.Event()

    def parent_query() -> None:
        with d.deadline(FakeConnection("parent", log), 0.5, grace=0.05):
            started.set()
            time.sleep(0.8)

    worker = threading.Thread(target=parent_query)
    worker.start()
    started.wait()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own deadline, past the parent's
        child_log: list[str] = []
        with d.deadline(FakeConnection("child", child_log), 0.2, grace=0.05):
            time.sleep(0.9)
        os.write(write, ",".join(child_log + log).encode())  # `log`: the child's copy of the parent's list
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child_fired = os.read(read, 1000).decode()
    os.close(read)
    worker.join()
    assert child_fired == f"{pid}:child"
    assert log == [f"{os.getpid()}:parent"]
