"""`civicq-ops watch`: checks on their intervals, alerts, history, /metrics, /healthz, /readyz."""

from __future__ import annotations

from typing import Annotated

import typer

from civicq_ops.cli.session import session_of


def watch(
    ctx: typer.Context,
    listen: Annotated[str | None, typer.Option("--listen", help="HOST:PORT for /metrics, /healthz, /readyz "
                                                                "(default: watch.listen, else 127.0.0.1:9187).")] = None,
    check: Annotated[list[str] | None, typer.Option("--check", help="Only these check ids (repeatable).")] = None,
    json_logs: Annotated[bool, typer.Option("--json-logs", help="One JSON object per log line.")] = False,
    pool: Annotated[int, typer.Option("--pool", help="Connections per target.")] = 2,
    for_: Annotated[str | None, typer.Option("--for", help="Stop after this long (e.g. 90s, 10m): a bounded run "
                                                           "for CI smoke tests. Default: until SIGTERM or Ctrl-C.")] = None,
) -> None:
    """Run each check on its own interval, evaluate alerts and serve metrics until SIGTERM or Ctrl-C.

    Example: civicq-ops watch --listen 127.0.0.1:9187 --json-logs
    Example: civicq-ops watch --for 2m --listen 127.0.0.1:0  (a bounded smoke run)
    """
    import logging
    import signal
    import threading
    import time

    from civicq_ops.catalog.load import project_catalog
    from civicq_ops.cli.common import not_blank
    from civicq_ops.core.errors import InputError
    from civicq_ops.core.units import positive_duration_option
    from civicq_ops.watch.logs import configure
    from civicq_ops.watch.watcher import serve

    not_blank("--listen", listen)
    if pool < 1:
        raise InputError(f"--pool must be at least 1 connection per target, not {pool}")
    deadline = None
    if not_blank("--for", for_) is not None:
        deadline = positive_duration_option("--for", str(for_))
    s = session_of(ctx)
    configure(json_logs, logging.WARNING if s.quiet else logging.INFO)
    catalog = project_catalog(s.project).catalog
    checks = [c.strip() for item in check or [] for c in item.split(",") if c.strip()] or None
    if check and not checks:
        raise InputError("--check needs a check id: leave the option out to watch every check")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}

    ends = None if deadline is None else time.monotonic() + deadline

    def until() -> None:
        # Short waits: a signal handler runs between them (a long blocking wait can delay it).
        while not stop.wait(0.5 if ends is None else max(0.0, min(0.5, ends - time.monotonic()))):
            if ends is not None and time.monotonic() >= ends:
                return

    try:
        serve(s.project, s.targets(), catalog, listen=listen, checks=checks, pool_size=pool, until=until)
    finally:
        for sig, handler in previous.items():  # an embedding process (a test) keeps its own
            signal.signal(sig, handler)


def register(root: typer.Typer) -> None:
    root.command()(watch)
