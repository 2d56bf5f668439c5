"""What an Owner keeps for its caller, on a small store: the thread list in pages, the
rate-limit window and run slots (in memory: a host that dies forgets the current minute,
nothing more), and the follow-ups scheduled on each thread."""

from __future__ import annotations

import time
from typing import Any, Protocol

from actors.threads.owner_contract import (
    AddThread,
    Admission,
    Admit,
    FollowupCount,
    Listed,
    ListThreads,
    RemoveThread,
    SetFollowups,
    ThreadList,
)

THREADS_PER_PAGE = 100


class OwnerStore(Protocol):
    async def get(self, key: str) -> Any | None: ...

    async def set(self, key: str, value: Any) -> None: ...

    async def remove(self, key: str) -> None: ...


def _where(thread_id: str) -> str:
    """The key of the page index a listed thread is on: finding it costs one read,
    whatever the owner's count."""
    return f"page-of.{thread_id}"


class OwnerBook:
    def __init__(self, store: OwnerStore) -> None:
        self._store = store
        self._window_start, self._requests, self._runs = 0.0, 0, 0

    async def _pages(self) -> int:
        count = await self._store.get("threads.count") or 0
        return (count + THREADS_PER_PAGE - 1) // THREADS_PER_PAGE

    async def add_thread(self, request: AddThread) -> Listed:
        """Lists the thread, newest; once: a retried creation, or a keyed thread opened
        again, finds it listed."""
        summary = request.model_dump(mode="json", exclude_none=True)
        if await self._store.get(_where(request.id)) is not None:
            return Listed()
        count = await self._store.get("threads.count") or 0
        if count:  # listed before page indexes were kept: among the newest
            newest = await self._store.get(f"threads.{(count - 1) // THREADS_PER_PAGE}")
            if any(t["id"] == summary["id"] for t in newest or []):
                return Listed()
        index = count // THREADS_PER_PAGE
        page = await self._store.get(f"threads.{index}")
        await self._store.set(f"threads.{index}", [*(page or []), summary])
        await self._store.set("threads.count", count + 1)
        await self._store.set(_where(request.id), index)
        return Listed()

    async def remove_thread(self, request: RemoveThread) -> Listed:
        """Rewrites the page holding it, found by its index (a thread listed before those
        were kept is looked for page by page); the count keeps the slot, so pages stay
        aligned. Its follow-ups no longer count against the owner's."""
        counts = await self._store.get("followups")
        if counts and request.thread_id in counts:
            await self._store.set(
                "followups", {t: n for t, n in counts.items() if t != request.thread_id}
            )
        where = await self._store.get(_where(request.thread_id))
        indexes = [where] if where is not None else range(await self._pages())
        for index in indexes:
            page = await self._store.get(f"threads.{index}") or []
            kept = [t for t in page if t["id"] != request.thread_id]
            if len(kept) != len(page):
                await self._store.set(f"threads.{index}", kept)
                if where is not None:
                    await self._store.remove(_where(request.thread_id))
                return Listed()
        return Listed(status="not_found")

    async def list_threads(self, request: ListThreads) -> ThreadList:
        """Newest first."""
        threads: list[dict[str, Any]] = []
        for index in reversed(range(await self._pages())):
            threads += list(reversed(await self._store.get(f"threads.{index}") or []))
            if len(threads) >= request.offset + request.limit:
                break
        return ThreadList.model_validate(
            {"threads": threads[request.offset : request.offset + request.limit]}
        )

    def admit(self, request: Admit) -> Admission:
        now = time.monotonic()
        if now - self._window_start >= 60:
            self._window_start, self._requests = now, 0
        if request.per_minute and self._requests >= request.per_minute:
            return Admission(
                allowed=False, retry_after=max(1, int(60 - (now - self._window_start)))
            )
        if request.run and request.max_runs and self._runs >= request.max_runs:
            return Admission(allowed=False, retry_after=5)
        self._requests += 1
        self._runs += 1 if request.run else 0
        return Admission(allowed=True)

    def run_ended(self) -> Listed:
        self._runs = max(0, self._runs - 1)
        return Listed()

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
