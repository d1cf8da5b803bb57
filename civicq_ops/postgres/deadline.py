"""A client-side deadline for work on a connection, for servers that stop answering.

statement_timeout is enforced by the server, so it cannot help when the server itself is frozen
(SIGSTOP, a hung host, a half-dead network): the client then waits forever on a socket the kernel
keeps open. A watchdog thread does what a person at psql would: when the deadline passes it asks
the server to cancel (a new connection to the postmaster, bounded in time), and if the call has
still not returned `grace` seconds later, it shuts the socket down, so the waiting call fails at
once with an OperationalError and the caller reports an error instead of hanging.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

# How long a cancel request may take, and how long the call may take to return after it.
GRACE_S = 3.0


@dataclass
class Watch:
    """What the watchdog did; `fired` tells a caller that its error came from the deadline."""

    seconds: float
    fired: bool = False
    cut: bool = False  # the socket was shut down: the connection is unusable
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    def describe(self) -> str:
        what = "and its connection was cut" if self.cut else "and was cancelled"
        return f"the server did not answer within {self.seconds:.1f}s (client-side deadline) {what}"


@contextmanager
def deadline(conn: Any, seconds: float | None, grace: float = GRACE_S) -> Iterator[Watch]:
    """Bound the work done on `conn` inside the block to `seconds` (None: no bound)."""
    watch = Watch(seconds=seconds or 0.0)
    if seconds is None:
        yield watch
        return
    _WATCHDOG.add(time.monotonic() + max(0.0, seconds), conn, watch, grace)
    try:
        yield watch
    finally:
        watch._done.set()  # the watchdog drops it when it comes up


class _Watchdog:
    """One thread watches every deadline of the process (a heap by expiry). A thread started per
    query (threading.Timer) cost each check a thread start and a wait for it, a tenth of a small
    run's client time."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Any, Watch, float]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def forget(self) -> None:
        """In a forked child: the parent's deadlines and thread are not the child's (firing them would
        cancel the parent's queries and cut its sockets), and the lock may have been held at the fork."""
        self._cond = threading.Condition()
        self._heap = []
        self._thread = None

    def add(self, when: float, conn: Any, watch: Watch, grace: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), conn, watch, grace))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="civicq-ops-deadlines", daemon=True)
                self._thread.start()
            elif self._heap[0][3] is watch:
                self._cond.notify()  # the new deadline comes first: wake the watchdog sooner

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][3]._done.is_set():
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        _, _, conn, watch, grace = heapq.heappop(self._heap)
                        break
                    self._cond.wait(delay)
            # _fire waits `grace` for the cancelled call: in a thread of its own, so the
            # watchdog keeps its other deadlines.
            threading.Thread(target=_fire, args=(conn, watch, grace), daemon=True).start()


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG.forget)


def _fire(conn: Any, watch: Watch, grace: float) -> None:
    if watch._done.is_set():
        return
    watch.fired = True
    canceller = threading.Thread(target=_cancel, args=(conn, grace), daemon=True)
    canceller.start()
    if watch._done.wait(grace):
        return
    watch.cut = True
    shutdown_socket(conn)


def _cancel(conn: Any, grace: float) -> None:
    with suppress(Exception):  # a frozen postmaster does not answer the cancel either
        conn.cancel_safe(timeout=grace)


def shutdown_socket(conn: Any) -> None:
    """Shut the connection's socket down (a duplicate of its descriptor, so libpq's own stays
    valid until it closes it): a call blocked reading from it returns at once with an error."""
    with suppress(Exception):
        fd = conn.pgconn.socket
        sock = socket.socket(fileno=os.dup(fd))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()
