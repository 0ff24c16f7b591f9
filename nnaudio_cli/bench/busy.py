"""Busy neighbours for ``nnaudio benchmark --busy N``: processes that keep cores busy while
the transforms are timed again, as other jobs on a shared machine do.

Each neighbour is a Python process spinning in a loop; :func:`neighbours` starts them and
always stops them (normal exit, an error, Ctrl-C). A neighbour whose parent has gone (the
benchmark killed with SIGKILL) notices within milliseconds and exits by itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

# spins; checks every ~1 ms that the benchmark that started it is still its parent
SPIN = (
    "import os\n"
    "parent = os.getppid()\n"
    "while os.getppid() == parent:\n"
    "    for _ in range(20000):\n"
    "        pass\n"
)


@dataclass
class Neighbours:
    """The running neighbours: their process ids, and once stopped, the CPU seconds they
    used (user + system, all of them together)."""

    pids: list[int] = field(default_factory=list)
    cpu_seconds: float = 0.0


def _stop(procs: list[subprocess.Popen], into: Neighbours) -> None:
    """Kill and reap ``procs``, adding their CPU time to ``into``."""
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        if p.returncode is not None:  # already reaped by poll(): its CPU time is gone
            continue
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        into.cpu_seconds += usage.ru_utime + usage.ru_stime


@contextmanager
def neighbours(n: int, settle: float = 0.2) -> Iterator[Neighbours]:
    """Run ``n`` spinning processes for the duration of the ``with`` block.

    Parameters
    ----------
    n : how many (0: none, the block runs as is)
    settle : seconds to wait after starting them, so that they run before timing starts
    """
    state = Neighbours()
    procs: list[subprocess.Popen] = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen(
                [sys.executable, "-S", "-c", SPIN],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
            state.pids.append(procs[-1].pid)
        if n:
            time.sleep(settle)
        yield state
    finally:
        _stop(procs, state)
