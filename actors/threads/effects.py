"""What the thread service asks of the runtime that hosts it: the effects of a turn.

The Thread actor carries them out on Dapr (actors/dapr_host/effects.py); the unit tests carry
them out in memory (tests/memory_effects.py). Nothing here knows Dapr.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from actors.threads.run_events import DeltaMessage, StepEventsMessage

if TYPE_CHECKING:
    from actors.threads.announcements import Announcement, Sent
    from actors.threads.contract import (
        ChildRunAnswer,
        ChildRunEnded,
        Invalid,
        NotFound,
        StartChildRun,
    )


class Effects(Protocol):
    async def commit(self) -> None:
        """Saves every write of the turn so far in one transaction."""

    async def discard(self) -> None:
        """Throws away the turn's unsaved writes."""

    async def read_committed(self, key: str) -> tuple[bool, Any]:
        """A key as the store holds it now, past any cache (for the fence)."""

    def publish(self, message: StepEventsMessage | DeltaMessage) -> None:
        """Sends a run's events or text to every subscriber, in order, off the turn's
        critical path (a lost message is refilled from the run's stored log). It may
        wait for `flush_events`, a little while at most."""

    def announce(self, announcements: list[Announcement], went: Sent) -> None:
        """After the commit that stored them: publishes each thread event for other
        services and hands each webhook delivery to the deliverer, each on its own and
        in order, off the turn's critical path; then removes the stored ones that went
        out whole and tells `went` which did and which failed (to be sent again)."""

    def flush_events(self, text_of_ended_steps: bool = True) -> None:
        """The turn's steps ended: what waits to be published goes now; without the
        model text of steps that ended before any of it went out, unless
        `text_of_ended_steps` (someone streams the run and shows its text as it comes)."""

    async def chain_step(self) -> None:
        """Takes the run's next steps in a later turn of this thread, soon."""

    def watch(self) -> None:
        """Makes sure the run goes on if this host dies: the durable watchdog."""

    def unwatch(self) -> None:
        """No run needs the watchdog any more."""

    async def remind_deadline(self, run_id: str, due: timedelta) -> None:
        """Calls `deadline_passed` when a waiting run's approvals run out, durably."""

    async def forget_deadline(self) -> None: ...

    def renewed(self, owner: str, seconds: int) -> None:
        """The thread's keys now expire in `seconds`: drop it from the owner's list then."""

    def forget_erase(self) -> None:
        """The thread is gone: nothing is to be erased later."""

    async def forget_thread(self, owner: str) -> None:
        """Drops the (expired) thread from its owner's list."""

    async def take_run_slot(self, owner: str, limit: int) -> bool:
        """Takes one of the owner's concurrent-run slots if one of `limit` is free."""

    async def followups_allowed(self, owner: str, count: int, limit: int) -> bool:
        """Tells the owner this thread has `count` follow-ups: refused (and not counted)
        if that is more than before and takes the owner past `limit`."""

    def followups_counted(self, owner: str, count: int) -> None:
        """Tells the owner this thread has `count` follow-ups now (fewer than before),
        off the turn's critical path."""

    def run_slot(self, owner: str, taken: bool) -> None:
        """Takes or hands back one of the owner's concurrent-run slots."""

    def run_stopped(self, run_id: str) -> None:
        """Wakes whoever in this process waits for the run to stop."""

    async def start_child(self, thread_id: str, request: StartChildRun,
                          ) -> ChildRunAnswer | Invalid | NotFound:
        """Asks another thread (a child) to run an agent for one of this run's calls;
        raises ChildUnreachable if the answer cannot be had now."""

    def tell_parent(self, thread_id: str, request: ChildRunEnded) -> None:
        """Tells the parent thread that a child run ended, off the turn's critical path
        (the parent also checks on its children now and then)."""

    async def remind_children(self, run_id: str, every: timedelta) -> None:
        """Calls `reminder(CHILDREN, run_id)` every so often, durably, while the run waits
        for child runs."""

    async def forget_children(self) -> None: ...

    async def remind_followup(self, name: str, due: timedelta) -> None:
        """Calls `reminder(name, "")` once, after `due`, durably."""

    def forget_followup(self, name: str) -> None:
        """Drops a follow-up's reminder, off the turn's critical path."""

    def thread_listed(self, owner: str, summary: dict[str, Any]) -> None:
        """Adds a thread this one created (a child) to its owner's thread list."""


class ChildUnreachable(Exception):
    """The child thread could not be asked this time (its host going, or gone)."""
