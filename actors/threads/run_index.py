"""A thread's run index: every run it made, in order, in pages of RUNS_PER_PAGE under
`runs_key` (a new run rewrites the last page only). Part of its store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from actors.threads.state import RUNS_PER_PAGE, RunIndexPage, ThreadRecord, read_stored, runs_key


class RunIndex:
    def __init__(
        self,
        get: Callable[[str], Awaitable[Any | None]],
        put: Callable[[str, Any], Awaitable[None]],
    ) -> None:
        self._get, self._put = get, put

    async def add(self, record: ThreadRecord, run_id: str) -> ThreadRecord:
        """Lists a new run; returns the record to save."""
        index = record.runs_created // RUNS_PER_PAGE
        data = await self._get(runs_key(index)) if record.runs_created % RUNS_PER_PAGE else None
        page = RunIndexPage(index=index) if data is None else read_stored(RunIndexPage, data)
        page.run_ids.append(run_id)
        await self._put(runs_key(index), page)
        return record.model_copy(update={"runs_created": record.runs_created + 1})

    async def ids(self, record: ThreadRecord) -> list[str]:
        """Every run of the thread, oldest first."""
        found: list[str] = []
        for index in range(_pages(record)):
            found += await self._page(index)
        return found

    async def newest(self, record: ThreadRecord) -> str | None:
        """The run made last (one page read)."""
        ids = await self._page(_pages(record) - 1) if record.runs_created else []
        return ids[-1] if ids else None

    async def since(self, record: ThreadRecord, run_id: str) -> list[str] | None:
        """The runs from `run_id` on, oldest first (None: the thread has no such run),
        reading from the newest page back only as far as the run."""
        found: list[str] = []
        for index in reversed(range(_pages(record))):
            page = await self._page(index)
            found = page + found
            if run_id in page:
                return found[found.index(run_id) :]
        return None

    async def _page(self, index: int) -> list[str]:
        data = await self._get(runs_key(index))
        return read_stored(RunIndexPage, data).run_ids if data is not None else []


def _pages(record: ThreadRecord) -> int:
    return (record.runs_created + RUNS_PER_PAGE - 1) // RUNS_PER_PAGE
