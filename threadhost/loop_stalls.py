"""How long this process's event loop was kept from running: what daprd's app health
probe waits behind. The probe's timeout and threshold (threadhost/stack.py, the k8s
annotations) are chosen well above the worst stall measured under load (docs/deploy.md),
so a busy host is never taken for a dead one."""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import Gauge, Histogram

log = logging.getLogger(__name__)

TICK_SECONDS = 0.05
# A stall this long is logged: half of what daprd's probe waits (threadhost/stack.py).
LOGGED_STALL_SECONDS = 0.5
STALLS = Histogram(
    "threadhost_event_loop_stall_seconds",
    "How late the event loop ran a task that was due",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
WORST = Gauge("threadhost_event_loop_stall_seconds_max", "The longest stall since start")


async def watch_stalls() -> None:
    """Runs until cancelled: wakes every tick and records how late it woke."""
    worst = 0.0
    while True:
        due = time.perf_counter() + TICK_SECONDS
        await asyncio.sleep(TICK_SECONDS)
        late = max(time.perf_counter() - due, 0.0)
        STALLS.observe(late)
        if late >= LOGGED_STALL_SECONDS:
            log.warning(
                "the event loop was held %.2f s: something blocked it (daprd's health "
                "probe waits behind it)",
                late,
            )
        if late > worst:
            worst = late
            WORST.set(worst)
