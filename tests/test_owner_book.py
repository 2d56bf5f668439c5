"""What an Owner keeps for its caller, in-process: a thread is listed once however often
it is opened, and removing one costs the same reads and writes whatever the owner's count."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from actors.threads.owner_book import OwnerBook
from actors.threads.owner_contract import (
    AddThread,
    Admission,
    ListThreads,
    RemoveThread,
    SetStatus,
    StatusChange,
    ThreadSummary,
)
from actors.threads.owner_index import THREADS_PER_PAGE


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


def _status(book: OwnerBook, n: int, status: str, second: int) -> None:
    thread = _thread(n)
    at = datetime(2026, 12, 7, 9, 0, second, tzinfo=UTC)
    summary = ThreadSummary(id=thread.id, agent=thread.agent, created_at=thread.created_at)
    change = StatusChange(thread=summary, status=status, at=at)
    asyncio.run(book.set_status(SetStatus(changes=[change])))


def _ids(book: OwnerBook, **filters: object) -> list[str]:
    found = asyncio.run(book.list_threads(ListThreads(offset=0, limit=1000, **filters)))
    return [t.id for t in found.threads]


def test_threads_by_status_follow_their_latest_change_only() -> None:
    book, _ = _book_of(5)
    _status(book, 1, "active", 1)
    _status(book, 2, "active", 2)
    _status(book, 2, "waiting", 3)
    _status(book, 1, "idle", 5)
    _status(book, 1, "active", 4)  # older than the change kept: ignored
    assert _ids(book, status="active") == []
    assert _ids(book, status="waiting") == ["th_2"]
    assert _ids(book, status="idle") == ["th_1"]
    asyncio.run(book.remove_thread(RemoveThread(thread_id="th_2")))
    assert _ids(book, status="waiting") == []


def test_threads_by_metadata_cost_the_same_at_any_count() -> None:
    store = CountingStore()
    book = OwnerBook(store)

    async def fill() -> None:
        for n in range(20 * THREADS_PER_PAGE):
            user = "u-42" if n % 1000 == 0 else f"v-{n}"
            await book.add_thread(_thread(n).model_copy(update={"metadata": {"user": user}}))

    asyncio.run(fill())
    store.touched = 0
    assert _ids(book, metadata={"user": "u-42"}) == ["th_1000", "th_0"]
    assert store.touched <= 3  # the pair's own list, not the owner's 2,000 threads
    assert _ids(book, metadata={"user": "u-42", "plan": "pro"}) == []
    asyncio.run(book.remove_thread(RemoveThread(thread_id="th_1000")))
    assert _ids(book, metadata={"user": "u-42"}) == ["th_0"]


def test_a_gone_threads_state_changes_land_before_its_removal() -> None:
    """A change on its way when the thread is deleted has landed when `forget` returns;
    one not sent yet is dropped: the removal that follows is the last word."""
    from actors.dapr_host.status_batches import StatusBatches

    book, _ = _book_of(2)
    order: list[str] = []

    async def send(owner: str, request: SetStatus) -> None:
        await asyncio.sleep(0.05)  # a call through the sidecar
        await book.set_status(request)
        order.append("status")

    async def scenario() -> None:
        batches = StatusBatches(send)
        at = datetime.now(UTC)
        summary = ThreadSummary(id="th_1", agent="support", created_at=at)
        batches.add("ann", StatusChange(thread=summary, status="idle", at=at))
        await asyncio.sleep(0.52)  # sent now, not landed yet
        batches.add("ann", StatusChange(thread=summary, status="active", at=at))
        await batches.forget("ann", "th_1")
        await book.remove_thread(RemoveThread(thread_id="th_1"))
        order.append("removed")
        await asyncio.sleep(0.7)  # the dropped change never comes

    asyncio.run(scenario())
    assert order == ["status", "removed"]
    assert all("th_1" not in _ids(book, status=s) for s in ("idle", "active", "waiting"))


def test_a_short_runs_state_changes_ride_on_its_run_slot() -> None:
    """A run that starts and ends within one batch costs its owner one call (the slot
    handed back, carrying the thread's last state), not one more of its own; a slot call
    that fails puts the change back in the batch."""
    from actors.dapr_host.status_batches import BATCH_SECONDS, StatusBatches
    from actors.threads.owner_contract import Admit, RunEnded

    book, _ = _book_of(2)
    batched: list[SetStatus] = []

    async def send(owner: str, request: SetStatus) -> None:
        batched.append(request)
        await book.set_status(request)

    async def scenario() -> None:
        batches = StatusBatches(send)
        at = datetime.now(UTC)
        summary = ThreadSummary(id="th_1", agent="support", created_at=at)
        assert book.admit(Admit(max_runs=1, run=True, thread_id="th_1")).allowed
        batches.add("ann", StatusChange(thread=summary, status="active", at=at))
        idle = StatusChange(thread=summary, status="idle", at=at + timedelta(microseconds=1))
        batches.add("ann", idle)
        changes = batches.take("ann", "th_1")
        assert changes == [idle]
        await book.run_ended(RunEnded(thread_id="th_1", changes=changes))
        await asyncio.sleep(BATCH_SECONDS + 0.2)
        # The slot is free again, and nothing was left for a batch of its own.
        assert book.admit(Admit(max_runs=1, run=True, thread_id="th_2")).allowed
        assert batched == []
        batches.add("ann", idle)  # a failed slot call: back in the batch, sent there
        await asyncio.sleep(BATCH_SECONDS + 0.2)
        assert [c.status for r in batched for c in r.changes] == ["idle"]

    asyncio.run(scenario())
    assert _ids(book, status="idle") == ["th_1"]
    assert _ids(book, status="active") == []


def test_a_run_slot_is_held_by_its_thread_so_repeats_and_splits_leak_none() -> None:
    """Taking a thread's slot twice takes one; handing it back twice frees one; a slot
    its thread never handed back (told to another Owner instance during a rebalance) is
    the thread's again at its next run, and frees itself after the lease."""
    from actors.threads import owner_book
    from actors.threads.owner_contract import Admit, RunEnded

    book, _ = _book_of(2)

    def admit(thread: str) -> Admission:
        return book.admit(Admit(max_runs=2, run=True, thread_id=thread))

    async def scenario() -> None:
        first = admit("th_a")
        assert first.allowed and not first.held
        again = admit("th_a")  # a retried call, or a message queued behind the run
        assert again.allowed and again.held
        assert admit("th_b").allowed
        assert not admit("th_c").allowed  # two threads hold the two slots
        await book.run_ended(RunEnded(thread_id="th_a"))
        await book.run_ended(RunEnded(thread_id="th_a"))  # repeated: frees nothing more
        assert admit("th_c").allowed
        assert not admit("th_d").allowed
        # th_b's end went to another instance of this Owner: th_b's next run is let in
        # on the slot it still holds here, and takes no other.
        assert admit("th_b").held
        assert not admit("th_d").allowed

    asyncio.run(scenario())
    lease = owner_book.SLOT_LEASE_SECONDS
    try:
        owner_book.SLOT_LEASE_SECONDS = 0.0  # every slot's lease has run out
        assert admit("th_d").allowed
    finally:
        owner_book.SLOT_LEASE_SECONDS = lease
