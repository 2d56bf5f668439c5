"""Checkpoints of quick steps committed together (actors/threads/checkpoints.py), in process: what
waits is seen only after its commit, in order, and a failed commit shows nothing."""

from __future__ import annotations

import asyncio

import pytest

from actors.threads.checkpoints import Checkpoints


class Store:
    def __init__(self, fails: bool = False) -> None:
        self.commits, self.fails, self.seen = 0, fails, []
        self.tried, self.shown = asyncio.Event(), asyncio.Event()

    def show(self, what: str) -> None:
        self.seen.append(what)
        self.shown.set()

    async def commit(self) -> None:
        self.tried.set()
        await asyncio.sleep(0)
        if self.fails:
            raise ConnectionError("the sidecar went away")
        self.commits += 1


def test_what_waits_is_seen_after_its_commit_and_messages_stay_behind_it() -> None:
    async def main() -> None:
        store = Store()
        points = Checkpoints(store.commit, store.seen.append, linger=60)
        points.publish("before")  # nothing waits: it goes at once
        points.add(lambda: store.seen.append("step 1"))
        points.publish("delta of step 2")
        points.add(lambda: store.seen.append("step 2"))
        assert store.seen == ["before"] and store.commits == 0
        await points.flush()
        assert store.commits == 1
        assert store.seen == ["before", "step 1", "delta of step 2", "step 2"]
        await points.flush()  # nothing waits: no commit
        assert store.commits == 1

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_step_that_takes_a_while_has_the_earlier_ones_committed_beside_it() -> None:
    async def main() -> None:
        store = Store()
        points = Checkpoints(store.commit, store.show, linger=0.01)
        points.add(lambda: store.show("step 1"))
        await store.shown.wait()  # the next step is still running: the linger commits
        assert store.commits == 1 and store.seen == ["step 1"]
        await points.flush()
        assert store.commits == 1

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_failed_commit_shows_nothing_and_fails_the_turn() -> None:
    async def main() -> None:
        store = Store(fails=True)
        points = Checkpoints(store.commit, store.seen.append, linger=0.0)
        points.add(lambda: store.seen.append("step 1"))
        points.publish("delta")
        await store.tried.wait()  # the linger's commit
        await asyncio.sleep(0)  # and its failure
        with pytest.raises(ConnectionError):
            points.add(lambda: store.seen.append("step 2"))
        with pytest.raises(ConnectionError):
            await points.flush()
        points.drop()
        assert store.seen == [] and store.commits == 0

    asyncio.run(asyncio.wait_for(main(), 10))


def test_no_commit_starts_while_a_step_writes_its_checkpoint() -> None:
    async def main() -> None:
        store = Store()
        points = Checkpoints(store.commit, store.show, linger=0.0)
        points.add(lambda: store.show("step 1"))
        await points.hold()  # step 2 writes, waiting on a read in between
        await asyncio.sleep(0.05)
        assert store.commits == 0  # the linger waits for it
        points.release()
        points.add(lambda: store.show("step 2"))
        await points.flush()
        assert store.commits == 1 and store.seen == ["step 1", "step 2"]
        points.release()  # a step that did not hold releases nothing

    asyncio.run(asyncio.wait_for(main(), 10))
