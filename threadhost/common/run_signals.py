"""In-process wake-ups for requests waiting on a run.

A request waiting for its run is woken the moment the run stops: by the actor itself when
they share a process (the embedded default), and otherwise by the run's events, which
every gateway replica receives (gateway/app.py). The waiter's fallback poll only bounds
how late it notices when neither comes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict

# A signal may come before its waiter arrives, so it is kept; the oldest are dropped.
_LIMIT = 10_000
_signals: OrderedDict[str, asyncio.Event] = OrderedDict()


def _event(run_id: str) -> asyncio.Event:
    event = _signals.get(run_id)
    if event is None:
        event = _signals[run_id] = asyncio.Event()
        while len(_signals) > _LIMIT:
            _signals.popitem(last=False)
    return event


def run_changed(run_id: str) -> None:
    _event(run_id).set()


async def wait_for_change(run_id: str, at_most: float) -> None:
    event = _event(run_id)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(at_most):
            await event.wait()
    event.clear()


def forget(run_id: str) -> None:
    _signals.pop(run_id, None)
