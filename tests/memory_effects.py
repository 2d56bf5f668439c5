"""The thread service's store and effects in memory, for tests without a sidecar: a
state manager over a dict whose writes land only on commit, as the SDK's does, and
effects that record what the service asked for."""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from actors.threads.owner_contract import (
    AddThread,
    Admission,
    Admit,
    FollowupCount,
    Listed,
    RemoveThread,
    RunEnded,
    SetFollowups,
)
from actors.threads.reminders import Reminder
from actors.threads.run_events import DeltaMessage, StepEventsMessage

_REMOVED = object()


class MemoryState:
    """The subset of the SDK's ActorStateManager a ThreadStore uses."""

    def __init__(self) -> None:
        self.committed: dict[str, Any] = {}
        self.pending: dict[str, Any] = {}
        self.commits = 0
        # What commits wrote: bytes (as JSON) and keys.
        self.bytes_written = 0
        self.keys_written = 0

    async def try_get_state(self, key: str) -> tuple[bool, Any]:
        value = self.pending.get(key, self.committed.get(key, _REMOVED))
        return (False, None) if value is _REMOVED else (True, copy.deepcopy(value))

    async def set_state(self, key: str, value: Any) -> None:
        self.pending[key] = copy.deepcopy(value)

    async def set_state_ttl(self, key: str, value: Any, ttl_in_seconds: int) -> None:
        await self.set_state(key, value)

    async def try_remove_state(self, key: str) -> bool:
        found, _ = await self.try_get_state(key)
        self.pending[key] = _REMOVED
        return found

    def save(self) -> None:
        for key, value in self.pending.items():
            if value is _REMOVED:
                self.committed.pop(key, None)
            else:
                self.committed[key] = value
                self.bytes_written += len(json.dumps(value, default=str))
                self.keys_written += 1
        self.pending.clear()
        self.commits += 1


@dataclass
class MemoryEffects:
    state: MemoryState
    published: list[StepEventsMessage | DeltaMessage] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)  # chain_step, watch, unwatch, ...
    stopped: list[str] = field(default_factory=list)
    slots: list[tuple[str, bool]] = field(default_factory=list)
    # What the store holds if another host moved the run on (the fence's read).
    committed_elsewhere: dict[str, Any] = field(default_factory=dict)
    reads_past_cache: int = 0
    # How many messages had been published at each flush_events.
    flushed_at: list[int] = field(default_factory=list)
    flushed_text: list[bool] = field(default_factory=list)
    # Other threads, for child runs: a call to a thread goes to what this returns.
    thread: Callable[[str], Awaitable[Any]] | None = None
    # What a child run told its parent (thread id, ChildRunEnded): delivered by the test.
    told: list[tuple[str, Any]] = field(default_factory=list)
    # Thread events for other services, with their webhook deliveries.
    announced: list[tuple[Any, list[Any]]] = field(default_factory=list)
    # Announcements fail to go out (a sidecar down): they stay stored, to be sent again.
    failing_announcements: bool = False
    # The owner's run slots left (None: no bound), and its follow-ups by thread ("this"
    # is the service's own thread; a test sets the others).
    slots_free: int | None = None
    owner_followups: dict[str, int] = field(default_factory=dict)
    # Follow-up reminders registered: name -> due in.
    reminders: dict[str, timedelta] = field(default_factory=dict)
    # What steps spent (owner, tokens, dollars), and the refusal quota checks answer.
    spent: list[tuple[str, int, float]] = field(default_factory=list)
    # The states the thread told its owner it is in, in order.
    statuses: list[str] = field(default_factory=list)
    over_quota: Any = None
    # Model slots: what gives one back (None: none free), and the bounds of those taken.
    slot_free: Any = lambda: None  # noqa: E731
    slots_taken: list[list[str]] = field(default_factory=list)

    async def commit(self) -> None:
        self.state.save()

    async def discard(self) -> None:
        self.state.pending.clear()

    async def read_committed(self, key: str) -> tuple[bool, Any]:
        self.reads_past_cache += 1
        if key in self.committed_elsewhere:
            return True, self.committed_elsewhere[key]
        return key in self.state.committed, self.state.committed.get(key)

    def publish(self, message: StepEventsMessage | DeltaMessage) -> None:
        self.published.append(message)

    def announce(self, announcements: list[Any], went: Any) -> None:
        """Sent at once, whole, and removed from the store (unless `failing`)."""
        self.announced += [(a.event, a.deliveries) for a in announcements]
        ids = [a.event.id for a in announcements]
        if self.failing_announcements:
            went([], ids)
            return
        for event_id in ids:
            self.state.committed.pop(f"announce.{event_id}", None)
        went(ids, [])

    def flush_events(self, text_of_ended_steps: bool = True) -> None:
        self.flushed_at.append(len(self.published))
        self.flushed_text.append(text_of_ended_steps)

    async def chain_step(self, after: timedelta = timedelta(0)) -> None:
        self.asked.append("chain_step")

    async def take_model_slots(self, bounds: list[str], ticket: str) -> Any:
        if self.slot_free is None:
            return None
        self.slots_taken.append(bounds)
        return self.slot_free

    def watch(self, every: timedelta | None = None) -> None:
        self.asked.append("watch")

    async def watched(self) -> None:
        self.asked.append("watch")

    def unwatch(self) -> None:
        self.asked.append("unwatch")

    async def remind(self, reminder: Reminder, due: timedelta) -> None:
        if reminder.kind == "followup":
            self.reminders[reminder.name] = due
        else:
            self.asked.append("renewed" if reminder.kind == "erase" else f"remind_{reminder.kind}")

    async def forget(self, reminder: Reminder) -> None:
        if reminder.kind == "followup":
            self.reminders.pop(reminder.name, None)
        else:
            self.asked.append(f"forget_{reminder.kind}")

    async def ask_owner(self, owner: str, request: Any) -> Any:
        """The Owner's answers: run slots (`slots_free`), follow-ups by thread."""
        if isinstance(request, Admit):
            if self.slots_free is not None and self.slots_free <= 0:
                return Admission(allowed=False, retry_after=5)
            self.slots.append((owner, True))
            return Admission(allowed=True)
        if isinstance(request, SetFollowups):
            others = sum(n for t, n in self.owner_followups.items() if t != "this")
            if (
                request.limit
                and request.count > self.owner_followups.get("this", 0)
                and others + request.count > request.limit
            ):
                return FollowupCount(allowed=False, scheduled=others)
            self.owner_followups["this"] = request.count
            return FollowupCount(allowed=True)
        assert isinstance(request, RemoveThread), request
        self.asked.append("forget_thread")
        return Listed()

    def spend(self, owner: str, tokens: int, cost_usd: float) -> None:
        self.spent.append((owner, tokens, cost_usd))

    async def quota_refusal(self, owner: str) -> Any:
        return self.over_quota

    def status_changed(self, owner: str, change: Any) -> None:
        self.statuses.append(change.status)

    async def leave_owner(self, owner: str) -> None:
        self.statuses.append("gone")
        await self.ask_owner(owner, RemoveThread(thread_id="this"))

    def tell_owner(self, owner: str, request: Any) -> None:
        if isinstance(request, Admit | RunEnded):
            self.slots.append((owner, isinstance(request, Admit)))
        elif isinstance(request, SetFollowups):
            self.owner_followups["this"] = request.count
        else:
            assert isinstance(request, AddThread), request
            self.asked.append("thread_listed")

    def run_stopped(self, run_id: str) -> None:
        self.stopped.append(run_id)

    async def start_child(self, thread_id: str, request: Any) -> Any:
        self.asked.append("start_child")
        assert self.thread is not None, "no other threads in this test"
        return await (await self.thread(thread_id)).children.start_child_run(request)

    def tell_parent(self, thread_id: str, request: Any) -> None:
        self.told.append((thread_id, request))

    def events(self, run_id: str) -> list[tuple[int, str, Any]]:
        """Every step event published for the run: (seq, type, status or kind)."""
        return [
            (e.seq, e.type, e.data.get("status") or e.data.get("kind"))
            for m in self.published
            if isinstance(m, StepEventsMessage) and m.run_id == run_id
            for e in m.events
        ]
