"""Follow-ups of a thread, a part of the thread service: scheduled by its agent (the
`schedule_followup` tool, carried out in run_steps) or its owner (the API), each kept on
the thread's record with a durable reminder of its own, registered before the record that
lists it is committed. When one comes due, a run starts with its note as input, under the
thread's agent, its `on_active` policy and the owner's run slots; its key makes a reminder
delivered twice start one run.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from actors.engine.agents import UnknownAgent
from actors.engine.engine import Engine
from actors.engine.events import followup_fired
from actors.engine.followups import Followup, FollowupError, new_followup
from actors.threads.announcements import Announcement, Announcements
from actors.threads.contract import (
    Busy,
    CancelFollowup,
    Done,
    FollowupAnswer,
    FollowupNotFound,
    FollowupsAnswer,
    Invalid,
    ListFollowups,
    NotFound,
    PostMessage,
    RunAnswer,
    ScheduleFollowup,
    TooManyFollowups,
)
from actors.threads.deliveries import deliveries
from actors.threads.effects import Effects
from actors.threads.owner_contract import Admit, SetFollowups
from actors.threads.reads import ThreadReads
from actors.threads.reminders import Reminder
from actors.threads.state import ThreadRecord
from actors.threads.store import ThreadStore
from threadhost.common.settings import Settings

log = logging.getLogger(__name__)


class Turns(Protocol):
    """What a thread's follow-ups ask of its service."""

    async def admit(
        self,
        request: PostMessage,
        origin: Literal["user", "followup"],
    ) -> RunAnswer | NotFound | Invalid | Busy: ...

    async def commit(self) -> None: ...

    def slot(self, owner: str, taken: bool) -> None: ...


class ThreadFollowups:
    def __init__(
        self,
        thread_id: str,
        store: ThreadStore,
        engine: Engine,
        effects: Effects,
        settings: Settings,
        reads: ThreadReads,
        announcements: Announcements,
        turns: Turns,
    ) -> None:
        self.thread_id, self._store, self._engine = thread_id, store, engine
        self._effects, self._settings, self._reads = effects, settings, reads
        self._announcements, self._turns = announcements, turns
        # How many follow-ups of this thread its owner counts (None: not known yet).
        self._known: int | None = None

    def activated(self, record: ThreadRecord) -> None:
        self._known = len(record.followups)

    async def schedule_followup(
        self,
        request: ScheduleFollowup,
    ) -> FollowupAnswer | NotFound | Invalid | TooManyFollowups:
        record = await self._reads.owned(request)
        if record is None:
            return NotFound.of(self.thread_id)
        limit = self._settings.max_followups
        if len(record.followups) >= limit:
            return TooManyFollowups(
                detail=f"the thread has {limit} follow-ups scheduled, "
                f"the most it may have: cancel one first"
            )
        now = datetime.now(UTC)
        try:
            followup = new_followup(request.when, request.note, "api", now)
        except FollowupError as exc:
            return Invalid(detail=str(exc))
        if not await self.owner_allows(record, len(record.followups) + 1):
            most = self._settings.max_followups_per_owner
            return TooManyFollowups(
                detail=f"the owner has {most} follow-ups scheduled "
                f"across their threads, the most they may have: "
                f"cancel one first"
            )
        await self._remind(followup, now)
        await self._store.save_record(
            record.model_copy(update={"followups": [*record.followups, followup]})
        )
        await self._turns.commit()
        log.info("follow-up %s scheduled for %s", followup.followup_id, followup.due_at)
        return FollowupAnswer(followup=followup)

    async def list_followups(
        self,
        request: ListFollowups,
    ) -> FollowupsAnswer | NotFound:
        record = await self._reads.owned(request)
        if record is None:
            return NotFound.of(self.thread_id)
        return FollowupsAnswer(followups=record.followups)

    async def cancel_followup(
        self,
        request: CancelFollowup,
    ) -> Done | NotFound | FollowupNotFound:
        record = await self._reads.owned(request)
        if record is None:
            return NotFound.of(self.thread_id)
        kept = [f for f in record.followups if f.followup_id != request.followup_id]
        if len(kept) == len(record.followups):
            return FollowupNotFound(
                detail=f"thread {self.thread_id!r} has no follow-up {request.followup_id!r}"
            )
        await self._store.save_record(record.model_copy(update={"followups": kept}))
        await self._turns.commit()
        # After the commit: a reminder left behind finds nothing to do when it fires.
        await self._effects.forget(Reminder.followup(request.followup_id))
        return Done()

    async def due(self, followup_id: str) -> None:
        """A follow-up's reminder fired: its run starts (or is found, if this firing is a
        repeat), then the follow-up moves to its next time or is done. While one of the
        thread's follow-ups already has a run waiting to start, or its owner has no run
        slot free, it starts none: it is put off (engine/followups.py, `put_off`), so
        follow-ups never pile up runs in a queue."""
        record = await self._store.record()
        followup = (
            next((f for f in record.followups if f.followup_id == followup_id), None)
            if record is not None
            else None
        )
        if record is None or followup is None:  # cancelled, or the thread is gone
            return
        now = datetime.now(UTC)
        key = f"followup:{followup_id}:{followup.fired}"
        skipped = None if key in record.idempotency else await self._held_back(record)
        run_id = None
        if skipped is None:
            run_id, skipped = await self._start(record, followup, key)
        if skipped is not None:
            log.warning("follow-up %s came due but started no run: %s", followup_id, skipped)
        record = await self._store.known_record()
        later = followup.after_firing(now) if skipped is None else followup.put_off(now)
        if later is not None:
            await self._remind(later, now)
        await self._store.save_record(
            record.model_copy(
                update={
                    "followups": [
                        later if f.followup_id == followup_id else f
                        for f in record.followups
                        if f.followup_id != followup_id or later is not None
                    ]
                }
            )
        )
        self._announce(record, followup, run_id, skipped)
        await self._turns.commit()
        log.info("follow-up %s came due: run %s", followup_id, run_id)

    async def _start(
        self, record: ThreadRecord, followup: Followup, key: str
    ) -> tuple[str | None, str | None]:
        """The run the follow-up starts, or why it started none."""
        answer = await self._turns.admit(
            PostMessage(
                text=followup.note,
                owner=record.owner,
                on_active=record.on_active,
                idempotency_key=key,
            ),
            origin="followup",
        )
        if isinstance(answer, RunAnswer):
            return answer.run.run_id, None
        self._turns.slot(record.owner, taken=False)  # the slot it took goes back
        return None, str(getattr(answer, "detail", "") or answer.outcome)

    def _announce(
        self, record: ThreadRecord, followup: Followup, run_id: str | None, skipped: str | None
    ) -> None:
        """The firing, announced with the commit that records it."""
        try:
            agent = self._engine.catalog.current(record.agent)
        except UnknownAgent:
            return
        event = followup_fired(self.thread_id, record.owner, agent.name, followup, run_id, skipped)
        self._announcements.add(
            Announcement(event=event, deliveries=deliveries(record, agent, event))
        )

    async def _held_back(self, record: ThreadRecord) -> str | None:
        """Why a follow-up that came due starts no run now, if it may not."""
        for run_id in record.queue:
            queued = await self._store.run(run_id)
            if queued is not None and queued.input_origin == "followup":
                return "a follow-up's run already waits to start on this thread"
        limit = self._settings.max_concurrent_runs
        if (
            limit
            and not (
                await self._effects.ask_owner(
                    record.owner, Admit(run=True, max_runs=limit, thread_id=self.thread_id)
                )
            ).allowed
        ):
            return "its owner has every run slot taken"
        return None

    async def changed(self, before: list[Followup], after: ThreadRecord | None) -> None:
        """A step's follow-up tools scheduled some: their reminders, before its commit.
        (One it cancelled keeps its reminder, which finds nothing when it fires.)"""
        known = {f.followup_id for f in before}
        now = datetime.now(UTC)
        for followup in after.followups if after is not None else []:
            if followup.followup_id not in known:
                await self._remind(followup, now)

    async def _remind(self, followup: Followup, now: datetime) -> None:
        due = max(followup.due_at - now, timedelta(0)) + self._jitter(followup)
        await self._effects.remind(Reminder.followup(followup.followup_id), due)

    def _jitter(self, followup: Followup) -> timedelta:
        """A recurring follow-up comes due up to `followup_jitter_seconds` after its time:
        a daily `0 9 * * *` on thousands of threads spreads over that long instead of
        reaching the vendor in one second. Fixed for each firing of each follow-up (a
        reminder registered again keeps its time); a one-time follow-up keeps its own."""
        spread_ms = int(self._settings.followup_jitter_seconds * 1000)
        if followup.kind == "once" or spread_ms <= 0:
            return timedelta(0)
        seed = f"{self.thread_id}\n{followup.followup_id}\n{followup.fired}".encode()
        return timedelta(milliseconds=int(hashlib.sha256(seed).hexdigest()[:12], 16) % spread_ms)

    async def forget_all(self, record: ThreadRecord) -> None:
        for followup in record.followups:
            await self._effects.forget(Reminder.followup(followup.followup_id))

    async def owner_allows(self, record: ThreadRecord, count: int) -> bool:
        """Whether the owner may have `count` follow-ups on this thread (then counted)."""
        limit = self._settings.max_followups_per_owner
        if not limit:
            return True
        answer = await self._effects.ask_owner(
            record.owner, SetFollowups(thread_id=self.thread_id, count=count, limit=limit)
        )
        if not answer.allowed:
            return False
        self._known = count
        return True

    def committed(self) -> None:
        """Fewer follow-ups committed than the owner counts (cancelled, done): told."""
        record = self._store.latest
        if record is None or not self._settings.max_followups_per_owner:
            return
        count = len(record.followups)
        if self._known is not None and count < self._known:
            self._effects.tell_owner(
                record.owner, SetFollowups(thread_id=self.thread_id, count=count)
            )
        self._known = count
