"""Run a command and write its peak RSS (KiB, the largest of it and every descendant it waited for) and
its wall time (seconds, from fork to reaping: this launcher's own start-up is not in it) to the file
given first: `python -S bench/_peak_rss.py OUT cmd args...` writes "KIB SECONDS".

Why a launcher: the kernel seeds a new program's ru_maxrss with the peak RSS of the memory it was
started from (exec records the old address space's high-water mark; Python's subprocess uses vfork,
whose old address space is the parent's own). wait4 straight from the benchmark therefore reports
the benchmark's own peak for every command. This small process forks the command, so the floor is
its own few MiB (the benchmark prints it: the same launcher running `true`)."""

import os
import sys
import time

out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(out, "w") as f:
    f.write(f"{usage.ru_maxrss} {wall:.6f}")
sys.exit(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else 0)
