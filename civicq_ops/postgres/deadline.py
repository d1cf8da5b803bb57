"""A client-side deadline for work on a connection, for servers that stop answering.

statement_timeout is enforced by the server, so it cannot help when the server itself is frozen
(SIGSTOP, a hung host, a half-dead network): the client then waits forever on a socket the kernel
keeps open. A watchdog thread does what a person at psql would: when the deadline passes it asks
the server to cancel (a new connection to the postmaster, bounded in time), and if the call has
still not returned `grace` seconds later, it shuts the socket down, so the waiting call fails at
once with an OperationalError and the caller reports an error instead of hanging.
"""

from __future__ import annotations

import os
import socket
import threading
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
    timer = threading.Timer(max(0.0, seconds), _fire, args=(conn, watch, grace))
    timer.daemon = True
    timer.start()
    try:
        yield watch
    finally:
        watch._done.set()
        timer.cancel()


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
