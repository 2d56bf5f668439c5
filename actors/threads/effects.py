"""What the thread service asks of the runtime that hosts it: the effects of a turn.

The Thread actor carries them out on Dapr (actors/dapr_host/effects.py); the unit tests carry
them out in memory (tests/memory_effects.py). Nothing here knows Dapr.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from actors.engine.quotas import QuotaRefusal
from actors.threads.owner_contract import Answer, OwnerRequest, StatusChange
from actors.threads.reminders import Reminder
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

    async def chain_step(self, after: timedelta = timedelta(0)) -> None:
        """Takes the run's next steps in a later turn of this thread, soon (`after`)."""

    async def take_model_slots(self, bounds: list[str], ticket: str) -> Callable[[], None] | None:
        """A slot for the step's model call under each bound (actors/threads/
        model_slots.py): the function that gives them back, or None if they did not come
        within the wait (the thread's next step is then taken when they do)."""

    def watch(self, every: timedelta | None = None) -> None:
        """Makes sure the run goes on if this host dies: the durable watchdog (every
        `run_watchdog_seconds` unless given)."""

    async def watched(self) -> None:
        """The durable watchdog, registered before this returns (after the watchdog
        calls queued before it): for a run a commit just left running mid-call, which may
        outlive this host. Raises if it could not be registered."""

    def unwatch(self) -> None:
        """No run needs the watchdog any more."""

    async def remind(self, reminder: Reminder, due: timedelta) -> None:
        """Calls `reminder(name, data)` after `due` (and every `reminder.every`, if set),
        durably; one `registered_off_path` is registered off the turn's critical path."""

    async def forget(self, reminder: Reminder) -> None:
        """Drops the reminder of that name (one `dropped_off_path`: off the critical
        path)."""

    async def ask_owner(self, owner: str, request: OwnerRequest[Answer]) -> Answer:
        """The thread owner's Owner actor's answer (actors/threads/owner_contract.py)."""

    def tell_owner(self, owner: str, request: OwnerRequest[Answer]) -> None:
        """Sends the owner's Owner actor a request, off the turn's critical path."""

    def spend(self, owner: str, tokens: int, cost_usd: float) -> None:
        """Counts what a step's model calls spent against the owner's quotas."""

    async def quota_refusal(self, owner: str) -> QuotaRefusal | None:
        """Why the owner's threads may not call a model now (a quota used up), if so."""

    def status_changed(self, owner: str, change: StatusChange) -> None:
        """Tells the owner the thread's state changed (gathered with others, sent soon)."""

    async def leave_owner(self, owner: str) -> None:
        """The thread is gone: off its owner's lists, after its state changes on their way
        there have landed (those not sent yet are dropped), so the removal is last."""

    def run_stopped(self, run_id: str) -> None:
        """Wakes whoever in this process waits for the run to stop."""

    async def start_child(
        self,
        thread_id: str,
        request: StartChildRun,
    ) -> ChildRunAnswer | Invalid | NotFound:
        """Asks another thread (a child) to run an agent for one of this run's calls;
        raises ChildUnreachable if the answer cannot be had now."""

    def tell_parent(self, thread_id: str, request: ChildRunEnded) -> None:
        """Tells the parent thread that a child run ended, off the turn's critical path
        (the parent also checks on its children now and then)."""


class ChildUnreachable(Exception):
    """The child thread could not be asked this time (its host going, or gone)."""
