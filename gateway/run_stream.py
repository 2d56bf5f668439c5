"""Run events as server-sent events: the stored log first, then the live tail from pub/sub.

Every gateway replica subscribes to the run-events topic with its own consumer, so each
receives every event; a stream forwards those of its run. Event ids are run sequence
numbers: a client that reconnects with Last-Event-ID gets exactly what it missed from the
log, then the tail. A gap in what pub/sub delivered is filled from the log too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Protocol

from actors.engine.run import CALLER_ACTIONS, TERMINAL
from gateway.problems import RateLimited
from gateway.thread_client import ThreadClient, Unreachable

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# Messages a stream may fall behind by. Past it, what comes is dropped: the stream reads
# the events it missed from the run's log (a gap is filled from there), and a step's
# whole text comes with its event, so a slow reader costs memory up to this, no more.
STREAM_QUEUE = 512


class Listener:
    def __init__(self, hub: RunEventHub, key: str, owner: str) -> None:
        self.hub, self.key, self.owner = hub, key, owner
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(STREAM_QUEUE)

    def close(self) -> None:
        listeners = self.hub.listeners.get(self.key, set())
        if self in listeners:
            listeners.discard(self)
            self.hub.release(self.owner)
        if not listeners:
            self.hub.listeners.pop(self.key, None)


class RunEventHub:
    """This replica's fan-out from the topic to the streams it holds, by run or thread;
    each caller holds at most `per_owner` of them at once here (0: no bound)."""

    def __init__(self, per_owner: int = 0) -> None:
        self.listeners: dict[str, set[Listener]] = {}
        self.per_owner = per_owner
        self._open: dict[str, int] = {}

    def listen(self, key: str, owner: str) -> Listener:
        """A new stream's listener; a caller already at the bound gets a 429."""
        held = self._open.get(owner, 0)
        if self.per_owner and held >= self.per_owner:
            raise RateLimited(
                f"at most {self.per_owner} streams open at once per caller; close one first",
                title="Too many open streams",
                retry_after=5,
            )
        self._open[owner] = held + 1
        listener = Listener(self, key, owner)
        self.listeners.setdefault(key, set()).add(listener)
        return listener

    def release(self, owner: str) -> None:
        held = self._open.get(owner, 0) - 1
        if held > 0:
            self._open[owner] = held
        else:
            self._open.pop(owner, None)

    def deliver(self, message: dict[str, Any]) -> None:
        """To the listeners of its run and of its thread (a stream that starts a run listens
        on the thread first, so it misses nothing before it learns the run's id)."""
        for key in (message.get("run_id", ""), message.get("thread_id", "")):
            for listener in self.listeners.get(key, ()):
                try:
                    listener.queue.put_nowait(message)
                except asyncio.QueueFull:
                    pass  # read from the log when the stream catches up


def _frame(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    """One server-sent event; stored events carry their sequence number as id."""
    head = "" if event_id is None else f"id: {event_id}\n"
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


def _sse(event: dict[str, Any], run_id: str) -> str:
    return _frame(event["type"], {**event, "run_id": run_id}, event["seq"])


class DeltaStream:
    """Token deltas as SSE, by step and attempt: when a retried model call starts its
    text over, a `token.discard` event first withdraws what the failed attempt showed."""

    def __init__(self, run_id: str | None = None) -> None:
        self.attempts: dict[int, int] = {}
        # A thread's stream says which run each delta is of.
        self._of = {"run_id": run_id} if run_id else {}

    def take(self, message: dict[str, Any], steps_done: int) -> list[str]:
        step, attempt = message["step"], message.get("attempt", 1)
        shown = self.attempts.get(step, attempt)
        if step <= steps_done or attempt < shown:  # sent whole already, or thrown away
            return []
        chunks = []
        if attempt > shown:
            chunks.append(_frame("token.discard", {"step": step, "attempt": shown, **self._of}))
        self.attempts[step] = attempt
        chunks.append(
            _frame(
                "token.delta",
                {"text": message["delta"], "step": step, "attempt": attempt, **self._of},
            )
        )
        return chunks


def _ends(event: dict[str, Any], more: bool) -> bool:
    """Whether the stream ends with this event: the run ended, or it waits for an action
    of the caller and nothing follows (an earlier pause that was resumed does not end a
    replay; a run that waits only for other agents goes on by itself)."""
    status = event["data"].get("status") if event["type"] == "run.status" else None
    waits_for_caller = any(
        action.get("type") in CALLER_ACTIONS
        for action in event["data"].get("required_action") or []
    )
    return status in TERMINAL or (status == "requires_action" and waits_for_caller and not more)


async def stream_run(
    client: ThreadClient,
    live: asyncio.Queue[dict[str, Any]],
    owner: str,
    thread_id: str,
    run_id: str,
    after: int,
    heartbeat: float,
    replay: bool = True,
    poll: float = 1.0,
) -> AsyncIterator[str]:
    """The run's events after `after`, from the log (unless the caller was listening
    before the run started: `replay=False`) then from `live`, until the run ends. Without
    live events for `poll` seconds it reads the log: a pub/sub that does not reach this
    replica (the in-memory one of another sidecar) only makes the stream slower."""
    stream = _RunStream(client, owner, thread_id, run_id, after)
    if replay:
        async for chunk in stream.from_log():
            yield chunk
    async for chunk in follow(stream, live, heartbeat, poll):
        yield chunk


class Followed(Protocol):
    """A stream fed by live messages, its log read when they do not come."""

    ended: bool

    def from_log(self) -> AsyncIterator[str]: ...

    def live(self, message: dict[str, Any]) -> AsyncIterator[str]: ...


async def follow(
    stream: Followed, live: asyncio.Queue[dict[str, Any]], heartbeat: float, poll: float
) -> AsyncIterator[str]:
    """The stream's chunks as live messages come, until it ends; quiet for `poll`
    seconds, what its log has (a pub/sub that does not reach this replica only makes it
    slower), and a keep-alive comment every `heartbeat` seconds of quiet."""
    quiet = 0.0
    while not stream.ended:
        try:
            message = await asyncio.wait_for(live.get(), poll)
        except TimeoutError:
            quiet += poll
            async for chunk in stream.from_log():
                yield chunk
            if quiet >= heartbeat and not stream.ended:
                quiet = 0.0
                yield ": keep-alive\n\n"
            continue
        quiet = 0.0
        async for chunk in stream.live(message):
            yield chunk


def parsed_frame(frame: str) -> tuple[str | None, dict[str, Any]]:
    """A server-sent event of a run's stream: its name and data."""
    event, data = None, {}
    for line in frame.splitlines():
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            data = json.loads(line[len("data: ") :])
    return event, data


class _RunStream:
    """One run's stream: the last event sent, and the text of the steps not ended yet."""

    def __init__(
        self, client: ThreadClient, owner: str, thread_id: str, run_id: str, after: int
    ) -> None:
        self._client, self._owner, self._thread_id, self._run_id = (
            client,
            owner,
            thread_id,
            run_id,
        )
        self.last, self.ended = after, False
        self._steps_done = 0
        self._deltas = DeltaStream()

    async def from_log(self, up_to: int | None = None) -> AsyncIterator[str]:
        """Stored events after the last sent (up to `up_to`: a gap's); none this time if
        the log cannot be reached (an actor host going): the stream stays open and the
        next quiet poll reads from where it is."""
        try:
            stored = await self._client.read_events(
                self._thread_id, self._run_id, self._owner, self.last
            )
        except Unreachable:
            return
        events = [
            e.model_dump(mode="json") for e in stored.events if up_to is None or e.seq <= up_to
        ]
        for n, event in enumerate(events):
            self.last = event["seq"]
            yield self._emit(event)
            more = n + 1 < len(events) or stored.run.status != "requires_action"
            if up_to is None and _ends(event, more):
                self.ended = True
                return

    async def live(self, message: dict[str, Any]) -> AsyncIterator[str]:
        """A message of the run-events topic: the run's text as it comes, or its events
        (a gap before them filled from the log)."""
        if message.get("run_id") != self._run_id:
            return
        if "delta" in message:
            for chunk in self._deltas.take(message, self._steps_done):
                yield chunk
            return
        events = message.get("events", [])
        for n, event in enumerate(events):
            if event["seq"] <= self.last:
                continue
            if event["seq"] > self.last + 1:
                async for missed in self.from_log(up_to=event["seq"] - 1):
                    yield missed
                if event["seq"] > self.last + 1:  # the log was out of reach: poll it later
                    break
            self.last = event["seq"]
            yield self._emit(event)
            if _ends(event, n + 1 < len(events)):
                self.ended = True
                return

    def _emit(self, event: dict[str, Any]) -> str:
        if event["type"] == "step.completed":
            self._steps_done = event["data"]["step"]
        return _sse(event, self._run_id)
