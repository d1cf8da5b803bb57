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
) -> None:
    """Run each check on its own interval, evaluate alerts and serve metrics until SIGTERM or Ctrl-C.

    Example: civicq-ops watch --listen 127.0.0.1:9187 --json-logs
    """
    import logging
    import signal
    import threading

    from civicq_ops.catalog.load import project_catalog
    from civicq_ops.watch.logs import configure
    from civicq_ops.watch.watcher import serve

    s = session_of(ctx)
    configure(json_logs, logging.WARNING if s.quiet else logging.INFO)
    catalog = project_catalog(s.project).catalog
    checks = [c.strip() for item in check or [] for c in item.split(",") if c.strip()] or None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def until() -> None:
        while not stop.wait(0.5):
            pass

    serve(s.project, s.targets(), catalog, listen=listen, checks=checks, pool_size=pool, until=until)


def register(root: typer.Typer) -> None:
    root.command()(watch)
