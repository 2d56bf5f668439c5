"""What an Owner keeps for its caller, on a small store: the thread list in pages, the
rate-limit window and run slots (in memory: a host that dies forgets the current minute,
nothing more), and the follow-ups scheduled on each thread.

A run slot is held by a thread, not counted: taking it twice, or handing it back twice,
changes nothing, so both calls are retried while actors move, and an Owner that was
briefly active on two hosts during a rebalance (each told half of a thread's calls) puts
itself right at the thread's next run. A slot nobody hands back (its host died between
the run's end and the call) frees itself after SLOT_LEASE_SECONDS."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC
from typing import Any

from actors.threads.owner_contract import (
    AddEndUser,
    AddThread,
    Admission,
    Admit,
    EndUserList,
    FollowupCount,
    Listed,
    ListEndUsers,
    ListThreads,
    RemoveThread,
    RunEnded,
    SetFollowups,
    SetStatus,
    StatusChange,
    ThreadList,
)
from actors.threads.owner_index import OwnerStore, PagedIndex

# How long a run slot is held without its thread being heard from: longer than a run
# runs before it stops or waits (a waiting run holds none).
SLOT_LEASE_SECONDS = 900.0


def _pair(key: str, value: str) -> str:
    return hashlib.sha256(f"{key}\n{value}".encode()).hexdigest()[:24]


class OwnerBook:
    def __init__(self, store: OwnerStore) -> None:
        self._store = store
        self._window_start, self._requests = 0.0, 0
        # The threads holding a run slot, with when each took or renewed it.
        self._running: dict[str, float] = {}
        self._threads = PagedIndex(store, "threads", "page-of.")
        self._end_users = PagedIndex(store, "end-users", "end-users.page-of.")

    def _by_status(self, status: str) -> PagedIndex:
        return PagedIndex(self._store, f"status.{status}", f"status.{status}.page-of.")

    def _by_pair(self, key: str, value: str) -> PagedIndex:
        pair = _pair(key, value)
        return PagedIndex(self._store, f"meta.{pair}", f"meta.{pair}.page-of.")

    async def add_thread(self, request: AddThread) -> Listed:
        """Lists the thread, newest, and under each of its metadata pairs; once: a
        retried creation, or a keyed thread opened again, finds it listed."""
        summary = request.model_dump(mode="json", exclude_none=True)
        if await self._threads.add(summary):
            for key, value in request.metadata.items():
                await self._by_pair(key, value).add(summary)
        # The first (told again to a retry of its creation, so the caller finishes what
        # a first attempt may have left undone).
        return Listed(first=await self._store.get("threads.count") == 1)

    async def add_end_user(self, request: AddEndUser) -> Listed:
        """A service's end user, listed once (they are told apart by id in the list)."""
        await self._end_users.add({"id": request.end_user})
        return Listed()

    async def list_end_users(self, request: ListEndUsers) -> EndUserList:
        found = await self._end_users.newest(request.offset, request.limit)
        return EndUserList(end_users=[entry["id"] for entry in found])

    async def remove_thread(self, request: RemoveThread) -> Listed:
        """Takes it off every list it is on (its follow-ups no longer count)."""
        counts = await self._store.get("followups")
        if counts and request.thread_id in counts:
            await self._store.set(
                "followups", {t: n for t, n in counts.items() if t != request.thread_id}
            )
        status = await self._store.get(f"status-of.{request.thread_id}")
        if status is not None:
            await self._by_status(status["status"]).remove(request.thread_id)
            await self._store.remove(f"status-of.{request.thread_id}")
        removed = await self._threads.remove(request.thread_id)
        if removed is None:
            return Listed(status="not_found")
        for key, value in removed.get("metadata", {}).items():
            await self._by_pair(key, value).remove(request.thread_id)
        return Listed()

    async def set_status(self, request: SetStatus) -> Listed:
        for change in request.changes:
            await self._changed(change)
        return Listed()

    async def _changed(self, change: StatusChange) -> None:
        """Moves the thread to its state's list (a change older than the one kept is
        ignored: changes may arrive out of order)."""
        # One format (UTC, microseconds), so that the stored times compare as text.
        thread_id, at = (
            change.thread.id,
            change.at.astimezone(UTC).isoformat(timespec="microseconds"),
        )
        known = await self._store.get(f"status-of.{thread_id}")
        if known is not None and known["at"] >= at:
            return  # a later change is kept already
        if known is not None and known["status"] == change.status:
            await self._store.set(f"status-of.{thread_id}", {**known, "at": at})
            return
        if known is not None:
            await self._by_status(known["status"]).remove(thread_id)
        await self._by_status(change.status).add(
            change.thread.model_dump(mode="json", exclude_none=True)
        )
        await self._store.set(f"status-of.{thread_id}", {"status": change.status, "at": at})

    async def list_threads(self, request: ListThreads) -> ThreadList:
        """Newest first; by status, or by a metadata pair, from that list: reading a page
        costs the same however many threads the owner has."""
        pairs = list(request.metadata.items())
        if request.status is not None:
            index, rest = self._by_status(request.status), pairs
        elif pairs:
            index, rest = self._by_pair(*pairs[0]), pairs[1:]
        else:
            index, rest = self._threads, []

        def keep(summary: dict[str, Any]) -> bool:
            metadata = summary.get("metadata", {})
            return all(metadata.get(key) == value for key, value in rest)

        threads = await index.newest(request.offset, request.limit, keep if rest else None)
        return ThreadList.model_validate({"threads": threads})

    def admit(self, request: Admit) -> Admission:
        now = time.monotonic()
        if now - self._window_start >= 60:
            self._window_start, self._requests = now, 0
        if request.per_minute and self._requests >= request.per_minute:
            return Admission(
                allowed=False, retry_after=max(1, int(60 - (now - self._window_start)))
            )
        held = False
        if request.run:
            self._running = {
                t: at for t, at in self._running.items() if now - at < SLOT_LEASE_SECONDS
            }
            held = request.thread_id in self._running
            if not held and request.max_runs and len(self._running) >= request.max_runs:
                return Admission(allowed=False, retry_after=5)
            self._running[request.thread_id or f"unnamed-{now}"] = now
        self._requests += 1
        return Admission(allowed=True, held=held)

    async def run_ended(self, request: RunEnded) -> Listed:
        self._running.pop(request.thread_id, None)
        return await self.set_status(SetStatus(changes=request.changes))

    async def set_followups(self, request: SetFollowups) -> FollowupCount:
        """Allowed unless the thread has more than before and the owner's total would pass
        the limit. Kept by thread, so a repeated or lost call is put right by the thread's
        next one; only threads with some are kept, so the map holds `limit` threads at
        most."""
        thread, count = request.thread_id, request.count
        counts = dict(await self._store.get("followups") or {})
        others = sum(n for t, n in counts.items() if t != thread)
        if request.limit and count > counts.get(thread, 0) and others + count > request.limit:
            return FollowupCount(allowed=False, scheduled=others + counts.get(thread, 0))
        if count:
            counts[thread] = count
        else:
            counts.pop(thread, None)
        await self._store.set("followups", counts)
        return FollowupCount(allowed=True)
