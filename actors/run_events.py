"""What actors publish on the run-events topic, for every gateway replica to forward.

Step events go out after their checkpoint is committed, in order, each with its sequence
number; a subscriber that misses one fills the gap from the run's stored log. Token
deltas are not stored: they are batched (at most one message per `DELTA_WINDOW`) and
published while the model streams. A model call that is retried starts its text over:
its deltas carry the attempt they belong to, so a subscriber withdraws the text of an
attempt that was thrown away instead of showing it twice.

The messages are typed here, once, for the publisher and the subscribers.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from actors.engine.run import RunEvent

DELTA_WINDOW = 0.05


class StepEventsMessage(BaseModel):
    """Events a committed checkpoint added to a run's log."""

    model_config = ConfigDict(extra="forbid")
    thread_id: str
    run_id: str
    events: list[RunEvent] = Field(min_length=1)


class DeltaMessage(BaseModel):
    """Text a streaming model call produced so far (not stored)."""

    model_config = ConfigDict(extra="forbid")
    thread_id: str
    run_id: str
    # The step the text belongs to (the step number it will have once committed).
    step: int
    # 1 for the call's first attempt; a retry of the call starts its text over.
    attempt: int = 1
    delta: str


class PublishedRunMessage(BaseModel):
    """A CloudEvent as daprd delivers it to a subscriber; only its data is read."""

    data: StepEventsMessage | DeltaMessage


class DeltaBatcher:
    """Collects a streaming model's text and hands it on in small batches."""

    def __init__(self, thread_id: str, run_id: str, step: int,
                 send: Callable[[DeltaMessage], None]) -> None:
        self._thread_id, self._run_id, self._step = thread_id, run_id, step
        self._send = send
        self._attempt = 1
        self._pending = ""
        self._last = 0.0

    async def __call__(self, text: str, attempt: int = 1) -> None:
        if attempt != self._attempt:
            # The call was retried: what its failed attempt left unsent is dropped.
            self._attempt, self._pending = attempt, ""
        self._pending += text
        if time.monotonic() - self._last >= DELTA_WINDOW:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._send(DeltaMessage(thread_id=self._thread_id, run_id=self._run_id,
                                    step=self._step, attempt=self._attempt,
                                    delta=self._pending))
            self._pending, self._last = "", time.monotonic()
