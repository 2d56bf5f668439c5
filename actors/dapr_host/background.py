"""Sidecar calls kept off an actor turn's critical path, run in order per thread.

Watchdog registrations (a watchdog that outlives its run finds no active run when it
fires and removes itself) and event publications (a lost one is refilled from the log by
subscribers) may land late; they must not land out of order, or a late removal could undo
the next run's registration.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

# Per thread, the last call in flight: each new one waits for it.
_last: dict[str, asyncio.Task[None]] = {}


async def settled(thread_id: str, seconds: float = 10) -> None:
    """Returns when the thread's calls queued so far have landed (or after `seconds`)."""
    last = _last.get(thread_id)
    if last is not None:
        await asyncio.wait([last], timeout=seconds)


def in_order(thread_id: str, work: Coroutine[Any, Any, Any]) -> None:
    previous = _last.get(thread_id)

    async def run() -> None:
        if previous is not None:
            await asyncio.wait([previous])
        try:
            await work
        except Exception:  # noqa: BLE001 - logged; see the module docstring
            log.warning(
                "thread %s: background call to the sidecar failed", thread_id, exc_info=True
            )
        finally:
            if _last.get(thread_id) is task:
                del _last[thread_id]

    task = asyncio.get_running_loop().create_task(run())
    _last[thread_id] = task
