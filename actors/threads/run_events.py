"""What actors publish on the run-events topic, for every gateway replica to forward.

Step events go out after their checkpoint is committed, in order, each with its sequence
number; a subscriber that misses one fills the gap from the run's stored log. Token
deltas are not stored: they are batched (at most one message per `DELTA_WINDOW`) and
published while the model streams. A model call that is retried starts its text over:
its deltas carry the attempt they belong to, so a subscriber withdraws the text of an
attempt that was thrown away instead of showing it twice.

A run's messages wait in its thread's `EventOutbox` until the turn's steps end, so the
events of a quick run go out as one message instead of one per checkpoint.

The messages are typed here, once, for the publisher and the subscribers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from actors.engine.run import RunEvent, StepCompleted

DELTA_WINDOW = 0.05
# The longest a run's messages wait in its thread's outbox for the turn's steps to end:
# what a quick run's steps take, far less than a model's first token.
PUBLISH_LINGER = 0.02


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

    def __init__(
        self, thread_id: str, run_id: str, step: int, send: Callable[[DeltaMessage], None]
    ) -> None:
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
            self._send(
                DeltaMessage(
                    thread_id=self._thread_id,
                    run_id=self._run_id,
                    step=self._step,
                    attempt=self._attempt,
                    delta=self._pending,
                )
            )
            self._pending, self._last = "", time.monotonic()


RunMessage = StepEventsMessage | DeltaMessage


class EventOutbox:
    """A thread's run messages on their way to the topic, sent in order off the turn's
    critical path (`schedule` runs the sending after what it scheduled before).

    Messages wait until `flush` (the turn's steps ended) or at most `linger` seconds (a
    slow step is under way), and consecutive events of one run go out as one message: a
    run that stops within its first turn is one publish, not one per checkpoint.

    A flush may leave out the model text of steps that ended before any of it went out
    (nobody streams them: the caller waits for the answer, which carries the messages);
    the step's event carries it whole. A step's text goes whole or not at all
    (subscribers show it as it comes, then the step without its text): what follows text
    already sent is kept, and so is a retried call's, which withdraws the failed
    attempt's."""

    def __init__(
        self,
        send: Callable[[RunMessage], Awaitable[None]],
        schedule: Callable[[Coroutine[Any, Any, None]], None],
        linger: float,
    ) -> None:
        self._send, self._schedule, self._linger = send, schedule, linger
        self._waiting: list[RunMessage] = []
        self._due = asyncio.Event()
        self._with_ended_text = True
        # (run, step, attempt) of the text sent for steps not yet completed.
        self._streaming: set[tuple[str, int, int]] = set()

    def add(self, message: RunMessage) -> None:
        if not self._waiting:
            self._due, self._with_ended_text = asyncio.Event(), True
            self._schedule(self._send_when_due(self._due))
        self._waiting.append(message)

    def flush(self, text_of_ended_steps: bool = True) -> None:
        self._with_ended_text = text_of_ended_steps
        self._due.set()

    async def _send_when_due(self, due: asyncio.Event) -> None:
        if self._linger > 0 and not due.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(due.wait(), self._linger)
        messages, self._waiting = self._waiting, []
        for message in _merged(messages, self._streaming, self._with_ended_text):
            await self._send(message)


def _merged(
    messages: list[RunMessage], streaming: set[tuple[str, int, int]], with_ended_text: bool
) -> list[RunMessage]:
    """One message per run's consecutive step events; text kept as the outbox says, and
    `streaming` updated with what is sent."""
    completed = {
        (m.run_id, e.step)
        for m in messages
        if isinstance(m, StepEventsMessage)
        for e in m.events
        if isinstance(e, StepCompleted)
    }
    merged: list[RunMessage] = []
    for message in messages:
        last = merged[-1] if merged else None
        if isinstance(message, DeltaMessage):
            text_of = (message.run_id, message.step, message.attempt)
            if (
                with_ended_text
                or message.attempt > 1
                or text_of in streaming
                or (message.run_id, message.step) not in completed
            ):
                streaming.add(text_of)
                merged.append(message)
        elif isinstance(last, StepEventsMessage) and last.run_id == message.run_id:
            merged[-1] = last.model_copy(update={"events": [*last.events, *message.events]})
        else:
            merged.append(message)
    streaming.difference_update({s for s in streaming if s[:2] in completed})
    return merged
