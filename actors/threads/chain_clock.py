"""How long a chain of steps has waited on something outside this host.

The chain budget hands a run's next steps to a later turn once its steps take a while (a
model call, a slow tool), and the checkpoints of finished steps are committed beside a
step that takes a while. Wall-clock time tells a slow step on a quiet host; on a busy one,
quick steps take as long, waiting for the event loop to finish other threads' work and
for a core. Measured by the wall there, quick runs are handed to timer turns, which cost
a commit, a watchdog, a publish and a read each: the host gets busier still (at 50
concurrent clients, 86% of quick runs were, at 26 ms of CPU per turn against 11).

So a chain is timed by what its thread's event loop was *not* doing: wall-clock time,
less the CPU the loop's thread used (this thread's work and other threads') and the time
it waited for a core (Linux's schedstat, where there is one). What is left is time the
loop sat idle: waiting on a model, a tool's thread or the sidecar. A chain on a busy host
still ends after `WALL_CAP` budgets of wall-clock time, so a lock and a caller's call are
never held for long, however busy the host.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

# A chain ends after this many budgets of wall-clock time, however little of it was idle.
WALL_CAP = 10

_SCHEDSTAT = "/proc/thread-self/schedstat"
_schedstat: dict[int, int | None] = {}  # thread id -> an open descriptor (None: none here)


def _waited_for_core() -> float:
    """Seconds this thread has waited for a core since it started (0.0 without
    schedstat); the file is opened once per thread, and read at offset 0."""
    ident = threading.get_ident()
    fd = _schedstat.get(ident, -1)
    if fd == -1:
        try:
            fd = os.open(_SCHEDSTAT, os.O_RDONLY)
        except OSError:
            fd = None
        _schedstat[ident] = fd
    if fd is None:
        return 0.0
    try:
        return int(os.pread(fd, 128, 0).split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def _busy() -> float:
    """Seconds this thread has run or waited to run."""
    return time.thread_time() + _waited_for_core()


@dataclass
class ChainClock:
    """Started when a chain (or a checkpoint's wait) starts, read on the same thread."""

    wall: float = field(default_factory=time.monotonic)
    busy: float = field(default_factory=_busy)

    def idle(self) -> float:
        """Seconds since the start that the loop's thread was idle."""
        return max((time.monotonic() - self.wall) - (_busy() - self.busy), 0.0)

    def spent(self, budget: float) -> bool:
        """Whether a chain started then has used up `budget`: that much idle time, or
        `WALL_CAP` budgets of wall-clock time."""
        wall = time.monotonic() - self.wall
        if wall < budget:  # idle time is part of it: no need to ask the kernel
            return False
        return wall >= WALL_CAP * budget or self.idle() >= budget
