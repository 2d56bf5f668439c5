"""A paged list of thread summaries on an Owner's store, newest last: the owner's thread
list, and the lists of its threads by status and by a metadata pair. Adding and removing
a thread costs a few reads and writes whatever the list's length (a thread's page is kept
under its own key); reading the newest costs the pages read, never the whole list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

THREADS_PER_PAGE = 100
Summary = dict[str, Any]


class OwnerStore(Protocol):
    async def get(self, key: str) -> Any | None: ...

    async def set(self, key: str, value: Any) -> None: ...

    async def remove(self, key: str) -> None: ...


class PagedIndex:
    def __init__(self, store: OwnerStore, name: str, where: str) -> None:
        # `where`: the key prefix under which each thread's page is kept.
        self._store, self._name, self._where = store, name, where

    def _page(self, index: int) -> str:
        return f"{self._name}.{index}"

    async def _count(self) -> int:
        return await self._store.get(f"{self._name}.count") or 0

    async def add(self, summary: Summary) -> bool:
        """Lists the thread, newest; False if it is listed already."""
        thread_id = summary["id"]
        if await self._store.get(self._where + thread_id) is not None:
            return False
        count = await self._count()
        if count:  # listed before page indexes were kept: among the newest
            newest = await self._store.get(self._page((count - 1) // THREADS_PER_PAGE))
            if any(t["id"] == thread_id for t in newest or []):
                return False
        index = count // THREADS_PER_PAGE
        page = await self._store.get(self._page(index))
        await self._store.set(self._page(index), [*(page or []), summary])
        await self._store.set(f"{self._name}.count", count + 1)
        await self._store.set(self._where + thread_id, index)
        return True

    async def remove(self, thread_id: str) -> Summary | None:
        """Takes the thread off, rewriting the page that holds it (found by its index; a
        thread listed before those were kept is looked for page by page): its summary,
        or None if it was not listed. The count keeps its slot, so pages stay aligned."""
        where = await self._store.get(self._where + thread_id)
        pages = (await self._count() + THREADS_PER_PAGE - 1) // THREADS_PER_PAGE
        for index in [where] if where is not None else range(pages):
            page = await self._store.get(self._page(index)) or []
            kept = [t for t in page if t["id"] != thread_id]
            if len(kept) != len(page):
                await self._store.set(self._page(index), kept)
                if where is not None:
                    await self._store.remove(self._where + thread_id)
                return next(t for t in page if t["id"] == thread_id)
        return None

    async def newest(
        self, offset: int, limit: int, keep: Callable[[Summary], bool] | None = None
    ) -> list[Summary]:
        """Newest first, those `keep` keeps."""
        found: list[Summary] = []
        pages = (await self._count() + THREADS_PER_PAGE - 1) // THREADS_PER_PAGE
        for index in reversed(range(pages)):
            page = await self._store.get(self._page(index)) or []
            found += [t for t in reversed(page) if keep is None or keep(t)]
            if len(found) >= offset + limit:
                break
        return found[offset : offset + limit]
