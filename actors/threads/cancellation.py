"""Aborting a step in flight when its run is cancelled.

Cancel takes effect at the next step boundary (CancelRun waits for the actor's lock), but
a model call can take a minute. So the gateway also publishes the cancel on the
run-control topic; every actor host receives it, and the one running that run's step
cancels the step's task. The step is then thrown away, uncommitted, and CancelRun ends
the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Literal, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class CancelMessage(BaseModel):
    """What the gateway publishes on the run-control topic."""

    action: Literal["cancel"] = "cancel"
    thread_id: str
    run_id: str


class PublishedControl(BaseModel):
    """A CloudEvent as daprd delivers it; only its data is read."""

    data: CancelMessage


_steps: dict[str, asyncio.Task] = {}


class StepAborted(Exception):
    """The run was cancelled while this step ran; nothing of it is written."""


async def abortable(run_id: str, work: Awaitable[T]) -> T:
    task = asyncio.ensure_future(work)
    _steps[run_id] = task
    try:
        return await task
    except asyncio.CancelledError:
        if task.cancelled() and not _current_cancelling():
            raise StepAborted(f"run {run_id} was cancelled during its step") from None
        raise
    finally:
        if _steps.get(run_id) is task:
            del _steps[run_id]


def _current_cancelling() -> bool:
    current = asyncio.current_task()
    return bool(current and current.cancelling())


def abort(run_id: str) -> bool:
    """Cancels the run's step if this process runs it; True if it did."""
    task = _steps.get(run_id)
    if task is None or task.done():
        return False
    task.cancel()
    return True
