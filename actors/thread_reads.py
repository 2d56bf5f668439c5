"""The Thread actor's read methods: the thread, its history, its runs and their events."""

from __future__ import annotations

from actors.engine.messages import messages_adapter
from actors.interface import Payload
from actors.state import ThreadRecord
from actors.thread_store import ThreadStore
from actors.views import NOT_FOUND, describe, owns, run_not_found, run_view


class ThreadReads:
    """Mixed into the Thread actor; reads only, under the actor's lock like every call."""

    _store: ThreadStore

    async def describe(self, request: Payload) -> Payload:
        record = await self._owned(request)
        return NOT_FOUND if record is None else {"status": "ok", "thread": describe(record)}

    async def _owned(self, request: Payload) -> ThreadRecord | None:
        """The thread, if it exists and the request's owner owns it."""
        record = await self._store.record()
        return record if record is not None and owns(record, request) else None

    async def list_runs(self, request: Payload) -> Payload:
        """The thread's runs, newest first, `limit` of them after skipping `offset`."""
        record = await self._owned(request)
        if record is None:
            return NOT_FOUND
        offset, limit = int(request.get("offset", 0)), int(request.get("limit", 20))
        newest_first = list(reversed(await self._store.run_ids(record)))
        runs = [await self._store.run(run_id) for run_id in newest_first[offset:offset + limit]]
        return {"status": "ok", "total": len(newest_first),
                "runs": [run_view(run) for run in runs if run is not None]}

    async def get_run(self, request: Payload) -> Payload:
        """The run; with `with_messages`, also its messages once it has stopped running."""
        record = await self._owned(request)
        if record is None:
            return NOT_FOUND
        run_id = str(request.get("run_id", ""))
        run = await self._store.run(run_id)
        if run is None:
            return run_not_found(run_id)
        answer: Payload = {"status": "ok", "run": run_view(run)}
        if request.get("with_messages") and run.status not in ("queued", "running"):
            # Its own messages only, not those of a run that came after it; none if it
            # never started (cancelled while queued).
            end = record.message_count if run.message_end is None else run.message_end
            messages = (await self._store.messages(record, run.first_message, end)
                        if run.first_message >= 0 else [])
            answer["messages"] = messages_adapter.dump_python(messages, mode="json")
            answer["message_count"] = record.message_count
        return answer

    async def read_events(self, request: Payload) -> Payload:
        record = await self._owned(request)
        if record is None:
            return NOT_FOUND
        run_id = str(request.get("run_id", ""))
        run = await self._store.run(run_id)
        if run is None:
            return run_not_found(run_id)
        after, limit = int(request.get("after", -1)), int(request.get("limit", 1000))
        events = await self._store.events(run, after, limit)
        return {"status": "ok", "run": run_view(run),
                "events": [e.model_dump(mode="json") for e in events]}

    async def read_history(self, request: Payload) -> Payload:
        record = await self._owned(request)
        if record is None:
            return NOT_FOUND
        offset, limit = int(request.get("offset", 0)), int(request.get("limit", 100))
        end = min(offset + limit, record.message_count)
        messages = await self._store.messages(record, offset, end)
        return {"status": "ok", "thread": describe(record), "offset": offset,
                "messages": messages_adapter.dump_python(messages, mode="json")}
