"""Running a child program (pg_dump, pg_restore, psql...) with a deadline.

A child that talks to a frozen server waits forever, and `subprocess.run` with it. `run_child`
bounds the wait: past the deadline the child is sent SIGTERM, then SIGKILL after a grace period,
its whole process group with it (pg_dump -j starts workers), and ChildTimeout names the program
and the limit. Output is collected as `subprocess.run(capture_output=True)` would.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from civicq_ops.core.errors import ExecutionError

TERM_GRACE_S = 5.0


class ChildTimeout(ExecutionError):
    """A child program did not finish within its deadline and was stopped."""


def run_child(
    args: Sequence[str | Path], *, timeout: float | None, env: dict[str, str] | None = None,
    cwd: str | Path | None = None, input: str | None = None, capture: bool = True, text: bool = True,
) -> subprocess.CompletedProcess:
    """Run `args` and wait at most `timeout` seconds (None: no limit) for it to finish."""
    pipe = subprocess.PIPE if capture else None
    proc = subprocess.Popen(  # noqa: S603 - a program path and arguments, never a shell
        [str(a) for a in args], env=env, cwd=cwd, stdout=pipe, stderr=pipe,
        stdin=subprocess.PIPE if input is not None else None, text=text, start_new_session=True,
    )
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(proc)
        name = Path(str(args[0])).name
        raise ChildTimeout(f"{name} did not finish within {timeout:g}s and was stopped "
                           "(is the server answering?)") from None
    except BaseException:
        _stop(proc)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the child's process group, SIGKILL if it is still there after a grace period."""
    for sig, wait in ((signal.SIGTERM, TERM_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.communicate(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
