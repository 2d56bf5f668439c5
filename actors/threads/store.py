"""Reads and writes one thread's state through the actor's state manager.

Writes are collected by the SDK's state manager and committed in one transaction when
the actor turn ends, so a step's messages, run record and events land together or not
at all. A thread with a retention writes every key with a time-to-live (Dapr's actor
state TTL), renewed as it stays active, so the store itself removes an idle thread.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from actors.engine.context import SummaryRecord
from actors.engine.messages import Message
from actors.engine.run import RunEvent, RunRecord
from actors.threads.run_index import RunIndex
from actors.threads.state import (
    EVENTS_PER_PAGE,
    RECORD_KEY,
    RUNS_PER_PAGE,
    EventPage,
    HistoryPage,
    ThreadRecord,
    announcement_key,
    append_messages,
    events_key,
    page_key,
    page_range,
    read_stored,
    retention_slack,
    run_key,
    runs_key,
    summary_key,
)

# How many parsed history pages a thread keeps (the newest used): a context window's.
PARSED_PAGES = 16


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json")


class ThreadStore:
    def __init__(self, state_manager: Any) -> None:
        self._state = state_manager
        # The state manager caches what it found; this remembers that the record was not
        # there (a thread that does not exist yet), which this activation alone can change.
        self._no_record = False
        # Keys' time-to-live, from the thread's retention; None: kept for good.
        self._ttl: int | None = None
        self._renewed_at: datetime | None = None
        # Set when this turn renewed every key: (owner, seconds until they expire).
        self._renewal: tuple[str, int] | None = None
        # The record as last read or written here (what the thread's events are told with).
        self.latest: ThreadRecord | None = None
        # Runs saved since the last commit, with their new events (what they announce).
        self._saved_runs: list[tuple[RunRecord, list[RunEvent]]] = []
        # The announcements the record lists, as this store last read or set them: kept
        # here, not taken from a record a caller saves (a step's copy of the record may
        # be older than a commit that listed more while it ran).
        self._outbox: list[str] | None = None
        # History pages as last read or written, each with the document it was read from:
        # a message is never changed, so a page read again from the same (cached)
        # document is the same page, not parsed again at every step.
        self._pages = _ParsedPages()
        # The thread's runs, in the order they were made, in pages of RUNS_PER_PAGE.
        self.runs = RunIndex(self._get, self._put)

    async def _get(self, key: str) -> Any | None:
        found, data = await self._state.try_get_state(key)
        return data if found else None

    async def _put(self, key: str, value: BaseModel | Any) -> None:
        data = _dump(value) if isinstance(value, BaseModel) else value
        if self._ttl is None:
            await self._state.set_state(key, data)
        else:
            await self._state.set_state_ttl(key, data, self._ttl)

    async def record(self) -> ThreadRecord | None:
        """The thread; None if there is none, or its retention ran out since its last
        activity (its keys are then expiring in the store)."""
        if self._no_record:
            return None
        data = await self._get(RECORD_KEY)
        self._no_record = data is None
        if data is None:
            return None
        record = read_stored(ThreadRecord, data)
        if self._outbox is None:
            self._outbox = record.outbox
        self._ttl = _ttl_of(record)
        if record.expired(datetime.now(UTC)):
            return None
        self.latest = record
        return record

    async def save_record(self, record: ThreadRecord) -> None:
        """Writes the record: an activity, which renews the thread's retention. Its list
        of announcements is the store's own (`list_announcements`)."""
        if self._outbox is not None and record.outbox != self._outbox:
            record = record.model_copy(update={"outbox": self._outbox})
        self._no_record = False
        self._ttl = _ttl_of(record)
        if record.retention_seconds is not None:
            now = datetime.now(UTC)
            renewed = max(filter(None, (record.ttl_renewed_at, self._renewed_at)), default=None)
            slack = timedelta(seconds=retention_slack(record.retention_seconds))
            if renewed is None or now - renewed >= slack:
                for key in await self._keys(record):
                    if (data := await self._get(key)) is not None:
                        await self._put(key, data)
                self._renewed_at = renewed = now
                self._renewal = (record.owner, self._ttl or 0)
            record = record.model_copy(update={"active_at": now, "ttl_renewed_at": renewed})
        self.latest = record
        await self._put(RECORD_KEY, record)

    def take_renewal(self) -> tuple[str, int] | None:
        """The renewal the turn just committed, once."""
        renewal, self._renewal = self._renewal, None
        return renewal

    def forget_unsaved(self) -> None:
        """The turn's writes were thrown away: so was any renewal among them, and the
        runs saved among them announce nothing."""
        self._saved_runs.clear()
        if self._renewal is not None:
            self._renewal = self._renewed_at = None

    def take_saved_runs(self) -> list[tuple[RunRecord, list[RunEvent]]]:
        """The runs saved since this was last asked, each as last saved with every event
        saved for it (once each, in order), once."""
        saved, self._saved_runs = self._saved_runs, []
        runs: dict[str, RunRecord] = {}
        events: dict[str, dict[int, RunEvent]] = {}
        for run, new in saved:
            runs[run.run_id] = run
            events.setdefault(run.run_id, {}).update((e.seq, e) for e in new)
        return [
            (run, sorted(events[run_id].values(), key=lambda e: e.seq))
            for run_id, run in runs.items()
        ]

    async def save_announcement(self, event_id: str, announcement: BaseModel) -> None:
        await self._put(announcement_key(event_id), announcement)

    async def list_announcements(self, record: ThreadRecord, event_ids: list[str]) -> None:
        """Sets which announcements the record lists, and writes it."""
        self._outbox = list(event_ids)
        await self.save_record(record)

    async def announcement(self, event_id: str) -> Any | None:
        """A stored announcement as JSON; None once it was sent (and removed)."""
        return await self._get(announcement_key(event_id))

    async def page(self, record: ThreadRecord, index: int) -> HistoryPage:
        # Whether a page exists follows from the record: no store read for a new one.
        if index * record.page_size >= record.message_count:
            return HistoryPage(index=index)
        data = await self._get(page_key(index))
        if data is None:
            return HistoryPage(index=index)
        return self._pages.parsed(index, data)

    async def append(self, record: ThreadRecord, messages: list[Message]) -> ThreadRecord:
        """Writes the messages after the last one; returns the record to save."""
        if not messages:
            return record
        tail = await self.page(record, record.tail_page_index())
        record, pages = append_messages(record, tail, messages)
        for page in pages:
            data = _dump(page)
            await self._put(page_key(page.index), data)
            self._pages.keep(data, page)
        return record

    async def messages(self, record: ThreadRecord, start: int, end: int) -> list[Message]:
        """The messages with indexes in [start, end)."""
        found: list[Message] = []
        # Read side by side: a context window may span many pages.
        pages = await asyncio.gather(
            *(self.page(record, index) for index in page_range(record, start, end - start))
        )
        for page in pages:
            found.extend(page.messages)
        skip = start % record.page_size
        return found[skip : skip + max(end - start, 0)]

    async def summary(self, record: ThreadRecord) -> SummaryRecord | None:
        """The thread's latest summary, if it has one."""
        if record.summary is None:
            return None
        return await self.summary_at(record.summary.index)

    async def summary_at(self, index: int) -> SummaryRecord | None:
        """A summary the thread made (its latest, or one before it)."""
        data = await self._get(summary_key(index))
        return None if data is None else read_stored(SummaryRecord, data)

    async def save_page(self, page: HistoryPage) -> None:
        """Writes a whole history page (a fork's copy; a turn appends)."""
        data = _dump(page)
        await self._put(page_key(page.index), data)
        self._pages.keep(data, page)

    async def save_summary(self, summary: SummaryRecord) -> None:
        """Writes a new summary, once: it is never rewritten."""
        await self._put(summary_key(summary.index), summary)

    async def run(self, run_id: str) -> RunRecord | None:
        data = await self._get(run_key(run_id))
        return None if data is None else read_stored(RunRecord, data)

    async def known_record(self) -> ThreadRecord:
        """The record of a thread this turn knows is there (it read or wrote it)."""
        record = await self.record()
        if record is None:
            raise LookupError("the thread's record is gone mid-turn")
        return record

    async def known_run(self, run_id: str) -> RunRecord:
        """A run this turn knows is there: the record lists it, or the turn wrote it."""
        run = await self.run(run_id)
        if run is None:
            raise LookupError(f"run {run_id} is gone mid-turn")
        return run

    async def save_run(self, run: RunRecord, events: list[RunEvent]) -> None:
        """Writes the run record and appends its new events (the last `len(events)`)."""
        if events:
            self._saved_runs.append((run, events))
        await self._put(run_key(run.run_id), run)
        pages: dict[int, EventPage] = {}
        stored = run.next_seq - len(events)
        for event in events:
            index = event.seq // EVENTS_PER_PAGE
            if index not in pages:
                known = index * EVENTS_PER_PAGE < stored
                data = await self._get(events_key(run.run_id, index)) if known else None
                pages[index] = (
                    EventPage(index=index) if data is None else read_stored(EventPage, data)
                )
            pages[index].events.append(event)
        for index, page in pages.items():
            await self._put(events_key(run.run_id, index), page)

    async def _keys(self, record: ThreadRecord) -> list[str]:
        """Every key of the thread but its record: history, runs, their events, the index."""
        keys = [page_key(i) for i in page_range(record, 0, record.message_count)]
        for run_id in await self.runs.ids(record):
            run = await self.run(run_id)
            pages = (run.next_seq + EVENTS_PER_PAGE - 1) // EVENTS_PER_PAGE if run else 0
            keys += [run_key(run_id), *(events_key(run_id, i) for i in range(pages))]
        summaries = record.summary.index + 1 if record.summary is not None else 0
        listed = self._outbox if self._outbox is not None else record.outbox
        keys += [announcement_key(event_id) for event_id in listed]
        return (
            keys
            + [
                runs_key(i)
                for i in range((record.runs_created + RUNS_PER_PAGE - 1) // RUNS_PER_PAGE)
            ]
            + [summary_key(i) for i in range(summaries)]
        )

    async def delete_all(self, record: ThreadRecord) -> None:
        """Removes every key of the thread."""
        for key in [*await self._keys(record), RECORD_KEY]:
            await self._state.try_remove_state(key)
        self._no_record = True

    async def events(self, run: RunRecord, after: int, limit: int) -> list[RunEvent]:
        """Events with seq > after, at most `limit` of them."""
        found: list[RunEvent] = []
        first, last = (after + 1) // EVENTS_PER_PAGE, (run.next_seq - 1) // EVENTS_PER_PAGE
        for index in range(first, last + 1):
            data = await self._get(events_key(run.run_id, index))
            if data is not None:
                found.extend(e for e in read_stored(EventPage, data).events if e.seq > after)
            if len(found) >= limit:
                break
        return found[:limit]


def _ttl_of(record: ThreadRecord) -> int | None:
    """How long the thread's keys live (None: for ever): its retention and some slack."""
    retention = record.retention_seconds
    return None if retention is None else retention + retention_slack(retention)


class _ParsedPages:
    """The latest pages read or written, parsed, each with the stored value it was parsed
    from (a page the state manager still holds as the same object is not parsed again)."""

    def __init__(self) -> None:
        self._pages: dict[int, tuple[Any, HistoryPage]] = {}

    def parsed(self, index: int, data: Any) -> HistoryPage:
        known = self._pages.get(index)
        if known is not None and known[0] is data:
            return known[1]
        page = read_stored(HistoryPage, data)
        self.keep(data, page)
        return page

    def keep(self, data: Any, page: HistoryPage) -> None:
        self._pages.pop(page.index, None)
        self._pages[page.index] = (data, page)
        while len(self._pages) > PARSED_PAGES:
            del self._pages[next(iter(self._pages))]
