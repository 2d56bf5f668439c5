"""The thread service's reads: the thread, its history, its runs (under the actor's lock,
like every call; reads that do not wait for the lock are actors/dapr_host/reader_actor.py's)."""

from __future__ import annotations

from typing import Any

from actors.engine.messages import AssistantText
from actors.engine.run import RunRecord
from actors.threads.contract import (
    DescribeThread,
    GetRun,
    HistoryAnswer,
    ListRuns,
    NotFound,
    ReadHistory,
    ReadThreadEvents,
    Request,
    RunAnswer,
    RunEventOf,
    RunNotFound,
    RunsAnswer,
    RunView,
    ThreadAnswer,
    ThreadEventsAnswer,
    ThreadView,
)
from actors.threads.state import ThreadRecord
from actors.threads.store import ThreadStore
from threadhost.common.owners import owns


class ThreadReads:
    """Answers the reads of one thread, and finds what other calls work on."""

    def __init__(self, thread_id: str, store: ThreadStore) -> None:
        self.thread_id, self._store = thread_id, store

    async def owned(self, request: Request) -> ThreadRecord | None:
        """The thread, if it exists and the request's owner may reach it: its own, or a
        service's end user's (threadhost/common/owners.py)."""
        record = await self._store.record()
        return record if record is not None and owns(request.owner, record.owner) else None

    async def owned_run(
        self,
        request: Request[Any],
        run_id: str,
    ) -> tuple[ThreadRecord, RunRecord] | NotFound | RunNotFound:
        """The thread and the request's run, or what to answer when either is missing."""
        record = await self.owned(request)
        if record is None:
            return NotFound.of(self.thread_id)
        run = await self._store.run(run_id)
        if run is None:
            return RunNotFound.of(self.thread_id, run_id)
        return record, run

    async def describe(self, request: DescribeThread) -> ThreadAnswer | NotFound:
        record = await self.owned(request)
        if record is None:
            return NotFound.of(self.thread_id)
        return ThreadAnswer(thread=ThreadView.of(record))

    async def list_runs(self, request: ListRuns) -> RunsAnswer | NotFound:
        """The thread's runs, newest first, `limit` of them after skipping `offset`."""
        record = await self.owned(request)
        if record is None:
            return NotFound.of(self.thread_id)
        newest_first = list(reversed(await self._store.runs.ids(record)))
        page = newest_first[request.offset : request.offset + request.limit]
        runs = [await self._store.run(run_id) for run_id in page]
        return RunsAnswer(
            total=len(newest_first), runs=[RunView.of(run) for run in runs if run is not None]
        )

    async def get_run(self, request: GetRun) -> RunAnswer | NotFound | RunNotFound:
        found = await self.owned_run(request, request.run_id)
        if isinstance(found, NotFound | RunNotFound):
            return found
        return await self.run_answer(*found, request.with_messages)

    async def run_answer(
        self,
        record: ThreadRecord,
        run: RunRecord,
        with_messages: bool,
        first_seq: int = 0,
        replayed: bool = False,
    ) -> RunAnswer:
        """The run; with its messages too if asked and it has stopped running: its own
        only, not those of a run that came after it; none if it never started."""
        answer = RunAnswer(run=RunView.of(run), first_seq=first_seq, replayed=replayed)
        if with_messages and answer.run.stopped:
            end = record.message_count if run.message_end is None else run.message_end
            answer.messages = (
                await self._store.messages(record, run.first_message, end)
                if run.first_message >= 0
                else []
            )
            answer.message_count = record.message_count
        return answer

    async def read_history(self, request: ReadHistory) -> HistoryAnswer | NotFound:
        record = await self.owned(request)
        if record is None:
            return NotFound.of(self.thread_id)
        end = min(request.offset + request.limit, record.message_count)
        return HistoryAnswer(
            thread=ThreadView.of(record),
            messages=await self._store.messages(record, request.offset, end),
        )

    async def answer_of(self, record: ThreadRecord, run: RunRecord) -> str | None:
        """A completed run's answer: its last assistant text."""
        if run.status != "completed":
            return None
        end = run.message_end if run.message_end is not None else record.message_count
        mine = await self._store.messages(record, run.first_message, end)
        return next((m.text for m in reversed(mine) if isinstance(m, AssistantText)), None)

    async def thread_events(
        self, request: ReadThreadEvents
    ) -> ThreadEventsAnswer | NotFound | RunNotFound:
        """The events of the thread's runs after the request's cursor, in order (see
        ThreadEventsAnswer): run after run, stopping after the first that has not ended."""
        record = await self.owned(request)
        if record is None:
            return NotFound.of(self.thread_id)
        after = request.after if request.after is not None else await self._now(record)
        if after == "":
            ids, seq = await self._store.runs.ids(record), -1
        else:
            run_id, _, last = after.rpartition(".")
            since = await self._store.runs.since(record, run_id)
            if since is None:
                return RunNotFound.of(self.thread_id, run_id)
            ids, seq = since, int(last)
        answer = ThreadEventsAnswer(events=[], cursor=after)
        for n, run_id in enumerate(ids):
            run = await self._store.run(run_id)
            if run is None:
                continue
            left = request.limit - len(answer.events)
            found = await self._store.events(run, seq if n == 0 else -1, left)
            answer.events += [RunEventOf(run_id=run_id, event=event) for event in found]
            if found:
                answer.cursor = f"{run_id}.{found[-1].seq}"
            if len(answer.events) >= request.limit:
                answer.more = True
                break
            if run.active:
                break
        return answer

    async def _now(self, record: ThreadRecord) -> str:
        """Where a stream that starts now starts: at the start of the run going on, else
        after the newest run's last event ("" before the thread's first run)."""
        if record.active_run is not None:
            return f"{record.active_run}.-1"
        newest = await self._store.runs.newest(record)
        run = await self._store.run(newest) if newest is not None else None
        return f"{newest}.{run.next_seq - 1}" if run is not None else ""
