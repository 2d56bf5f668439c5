"""A thread's announcements on their way out: each run transition (and each follow-up
that came due) as a thread event for other services and one delivery per webhook.

They are written in the same transaction as the commit that made them (a key each, listed
on the thread's record), sent after it, the thread event and the deliveries each on their
own, and their keys removed once sent. So neither waits for the other, and a host that
dies between the commit and the sending loses nothing: the thread's next activation (its
next call, a reminder, the watchdog of a running run), or its next commit, sends what is
still listed and still stored. At least once: an event's `id` is the same every time.

Plain Python, a collaborator of the thread service (actors/threads/service.py).
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from actors.engine.events import ThreadEvent, WebhookDelivery, run_announcements
from actors.engine.run import RunEvent, RunRecord
from actors.threads.deliveries import deliveries
from actors.threads.state import ThreadRecord
from actors.threads.store import ThreadStore

# Sent is what went out whole (to be forgotten), failed what is to be sent again.
Sent = Callable[[list[str], list[str]], None]


class Announcement(BaseModel):
    """A thread event, and its deliveries to the thread's webhooks."""

    event: ThreadEvent
    deliveries: list[WebhookDelivery] = Field(default_factory=list)


def of_run(record: ThreadRecord, run: RunRecord, events: list[RunEvent]) -> list[Announcement]:
    return [
        Announcement(event=event, deliveries=deliveries(record, run.agent, event, run.push))
        for event in run_announcements(record.owner, run, events)
    ]


class Announcements:
    def __init__(self, store: ThreadStore) -> None:
        self._store = store
        # Made in this turn, not yet committed (beside the runs the store saved).
        self._made: list[Announcement] = []
        # Of this activation: handed out to be sent (and not failed since), and sent.
        self._out: set[str] = set()
        self._sent: set[str] = set()

    def add(self, announcement: Announcement) -> None:
        self._made.append(announcement)

    def forget_unsaved(self) -> None:
        self._made.clear()

    async def before_commit(self) -> list[Announcement]:
        """Writes the turn's new announcements into the commit, with the record listing
        what is not known to be sent; returns what to send once it is committed (the new
        ones, and any listed one still stored that nobody is sending)."""
        record = self._store.latest
        made, self._made = self._made, []
        if record is None:
            return []
        made += [
            a for run, events in self._store.take_saved_runs() for a in of_run(record, run, events)
        ]
        waiting = await self.leftovers(record)
        listed = [i for i in record.outbox if i not in self._sent] + [a.event.id for a in made]
        if made or listed != record.outbox:
            for announcement in made:
                await self._store.save_announcement(announcement.event.id, announcement)
            await self._store.list_announcements(record, listed)
        # An id no longer listed is done with: this activation forgets it too.
        self._sent &= set(listed)
        return waiting + made  # the older first

    async def leftovers(self, record: ThreadRecord) -> list[Announcement]:
        """Listed announcements still stored that nobody here is sending: their host died
        before they went out, or sending them failed."""
        found = []
        for event_id in record.outbox:
            if event_id in self._out or event_id in self._sent:
                continue
            stored = await self._store.announcement(event_id)
            if stored is None:  # sent, and removed
                self._sent.add(event_id)
            else:
                found.append(Announcement.model_validate(stored))
        return found

    def handed_out(self, announcements: list[Announcement]) -> Sent:
        """Marks them as being sent; the callback the sender calls with how it went."""
        self._out |= {a.event.id for a in announcements}

        def went(sent: list[str], failed: list[str]) -> None:
            self._sent |= set(sent)
            self._out -= set(sent) | set(failed)

        return went
