"""What an Owner keeps for its caller, in-process: a thread is listed once however often
it is opened, and removing one costs the same reads and writes whatever the owner's count."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from actors.threads.owner_book import THREADS_PER_PAGE, OwnerBook
from actors.threads.owner_contract import AddThread, ListThreads, RemoveThread


class CountingStore:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.touched = 0

    async def get(self, key: str) -> Any | None:
        self.touched += 1
        return self.data.get(key)

    async def set(self, key: str, value: Any) -> None:
        self.touched += 1
        self.data[key] = value

    async def remove(self, key: str) -> None:
        self.touched += 1
        self.data.pop(key, None)


def _thread(n: int) -> AddThread:
    return AddThread(id=f"th_{n}", agent="support", created_at=datetime.now(UTC), key=f"k{n}")


def _book_of(count: int) -> tuple[OwnerBook, CountingStore]:
    store = CountingStore()
    book = OwnerBook(store)

    async def fill() -> None:
        for n in range(count):
            await book.add_thread(_thread(n))

    asyncio.run(fill())
    return book, store


def _cost_of_removing(book: OwnerBook, store: CountingStore, thread_id: str) -> int:
    store.touched = 0
    assert asyncio.run(book.remove_thread(RemoveThread(thread_id=thread_id))).status == "ok"
    return store.touched


def test_removing_the_oldest_thread_costs_the_same_at_any_count() -> None:
    small, small_store = _book_of(3)
    large, large_store = _book_of(30 * THREADS_PER_PAGE)
    assert _cost_of_removing(small, small_store, "th_0") == _cost_of_removing(
        large, large_store, "th_0"
    )
    listed = asyncio.run(large.list_threads(ListThreads(offset=0, limit=100_000)))
    assert "th_0" not in {t.id for t in listed.threads}
    assert len(listed.threads) == 30 * THREADS_PER_PAGE - 1


def test_a_thread_opened_again_long_after_is_listed_once() -> None:
    book, _ = _book_of(3 * THREADS_PER_PAGE)
    asyncio.run(book.add_thread(_thread(0)))  # its key opened again, pages later
    listed = asyncio.run(book.list_threads(ListThreads(offset=0, limit=100_000)))
    assert [t.id for t in listed.threads].count("th_0") == 1
    assert listed.threads[-1].key == "k0"


def test_a_list_written_before_page_indexes_still_loses_what_is_removed() -> None:
    book, store = _book_of(2 * THREADS_PER_PAGE + 5)
    for key in [k for k in store.data if k.startswith("page-of.")]:
        del store.data[key]
    asyncio.run(book.remove_thread(RemoveThread(thread_id="th_7")))
    listed = asyncio.run(book.list_threads(ListThreads(offset=0, limit=100_000)))
    assert "th_7" not in {t.id for t in listed.threads}
