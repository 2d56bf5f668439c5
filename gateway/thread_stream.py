"""A whole thread as server-sent events: every run of it as it happens, from any replica.

The stream is the thread's runs in order (ThreadEventsAnswer): each event's id is
`<run_id>.<seq>`, so a client that reconnects with Last-Event-ID gets exactly what it
missed, across runs. The stored log is read from the ThreadReader; the live tail comes
from the run-events topic this replica hears (run_stream.py's hub, by thread): a run's
next event is sent as it comes, token deltas of the run going on too, and anything else
(a new run, a gap, a run that ended and may have one queued behind it) is read from the
log from where the stream is. Quiet for `poll` seconds, it reads the log anyway: a
pub/sub that does not reach this replica only makes the stream slower. It ends when the
client goes or the thread is deleted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from actors.engine.run import TERMINAL
from actors.threads.contract import RunEventOf, ThreadEventsAnswer
from gateway.problems import Problem
from gateway.run_stream import DeltaStream, follow
from gateway.thread_client import ThreadClient, Unreachable


def _frame(event: str, data: dict[str, Any], event_id: str | None = None) -> str:
    head = "" if event_id is None else f"id: {event_id}\n"
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


class ThreadStream:
    """One client's stream of a thread: where it is (the cursor), and the run whose
    token deltas it passes on."""

    def __init__(self, client: ThreadClient, owner: str, thread_id: str, after: str | None):
        self._client, self._owner, self._thread_id = client, owner, thread_id
        self.cursor, self.ended = after, False
        self._deltas: dict[str, DeltaStream] = {}
        self._steps_done: dict[str, int] = {}

    @property
    def _at(self) -> tuple[str, int] | None:
        """The run and sequence number of the last event sent."""
        if not self.cursor:
            return None
        run_id, _, seq = self.cursor.rpartition(".")
        return run_id, int(seq)

    async def replay(self, answer: ThreadEventsAnswer) -> AsyncIterator[str]:
        """A read of the log already made; the rest of it if that was cut short."""
        for item in answer.events:
            yield self._emit(item)
        self.cursor = answer.cursor
        if answer.more:
            async for chunk in self.from_log():
                yield chunk

    async def from_log(self) -> AsyncIterator[str]:
        """What the log has after the cursor; nothing this time if the thread cannot be
        reached; the stream is over if the thread is gone."""
        while True:
            try:
                answer = await self._client.read_thread_events(
                    self._thread_id, self._owner, self.cursor
                )
            except Unreachable:
                return
            except Problem as refused:  # deleted while streaming (or never there)
                yield _frame(
                    "thread.gone", {"thread_id": self._thread_id, "status": refused.status}
                )
                self.ended = True
                return
            for item in answer.events:
                yield self._emit(item)
            self.cursor = answer.cursor
            if not answer.more:
                return

    async def live(self, message: dict[str, Any]) -> AsyncIterator[str]:
        """A message of the run-events topic for this thread."""
        at = self._at
        run_id = message.get("run_id", "")
        if "delta" in message:
            if at is not None and run_id == at[0]:
                deltas = self._deltas.setdefault(run_id, DeltaStream(run_id))
                for chunk in deltas.take(message, self._steps_done.get(run_id, 0)):
                    yield chunk
            return
        events = message.get("events", [])
        following = (
            at is not None
            and run_id == at[0]
            and events
            and events[0]["seq"] <= at[1] + 1 <= events[-1]["seq"]
        )
        if not following:  # a new run, a gap, a stream before its first cursor: the log
            async for chunk in self.from_log():
                yield chunk
            return
        assert at is not None
        for event in events:
            if event["seq"] <= at[1]:
                continue
            item = RunEventOf.model_validate({"run_id": run_id, "event": event})
            yield self._emit(item)
            if _ended(event):  # a run queued behind it may have begun: the log has it
                async for chunk in self.from_log():
                    yield chunk
                return

    def _emit(self, item: RunEventOf) -> str:
        event = item.event.model_dump(mode="json")
        self.cursor = item.id
        if event["type"] == "step.completed":
            self._steps_done[item.run_id] = event["data"]["step"]
        if _ended(event):
            self._deltas.pop(item.run_id, None)
            self._steps_done.pop(item.run_id, None)
        return _frame(event["type"], {**event, "run_id": item.run_id}, item.id)


def _ended(event: dict[str, Any]) -> bool:
    return event["type"] == "run.status" and event["data"].get("status") in TERMINAL


async def stream_thread(
    client: ThreadClient,
    live: asyncio.Queue[dict[str, Any]],
    owner: str,
    thread_id: str,
    first: ThreadEventsAnswer,
    heartbeat: float,
    poll: float = 2.0,
) -> AsyncIterator[str]:
    """The thread's events from a first read of its log (made before the response
    began, so a refusal is an answer of its own), then as they come, until the client
    goes or the thread is deleted. The listener of `live` was opened before that read."""
    stream = ThreadStream(client, owner, thread_id, first.cursor)
    async for chunk in stream.replay(first):
        yield chunk
    async for chunk in follow(stream, live, heartbeat, poll):
        yield chunk
