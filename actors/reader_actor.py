"""The ThreadReader actor: reads of a thread's committed runs and events that never wait
for the thread's own actor.

A run is polled, and a stream's gaps are filled, while a step may hold the Thread actor's
lock for as long as a model call takes; and a thread whose host has died has no actor to
ask until another host takes it over. These reads need neither: one ThreadReader per
thread (the same id) reads the thread's keys from the store through its host's sidecar
(actors/committed.py). Being an actor, it is reached through placement, which sends calls
only to live hosts, so a dead host costs a read no more than placement takes to notice.
"""

from __future__ import annotations

from dapr.actor import Actor, ActorInterface, actormethod

from actors.committed import committed_store
from actors.contract import (
    EventsAnswer,
    NotFound,
    ReadEvents,
    ReadRun,
    Refusal,
    RunAnswer,
    RunNotFound,
    RunView,
)
from actors.engine.run import RunRecord
from actors.interface import READER_ACTOR_TYPE, Payload
from actors.thread_actor import serve
from actors.thread_store import ThreadStore
from threadhost.actor_client import shared_actor_client

__all__ = ["READER_ACTOR_TYPE", "ThreadReader"]


class ThreadReaderInterface(ActorInterface):
    @actormethod(name="ReadRun")
    async def read_run(self, request: Payload) -> Payload: ...

    @actormethod(name="ReadEvents")
    async def read_events(self, request: Payload) -> Payload: ...


class ThreadReader(Actor, ThreadReaderInterface):
    """Holds no state of its own: its id is the thread's."""

    async def read_run(self, request: Payload) -> Payload:
        return await serve(ReadRun, request, self._run)

    async def read_events(self, request: Payload) -> Payload:
        return await serve(ReadEvents, request, self._events)

    async def _run(self, request: ReadRun) -> RunAnswer | Refusal:
        found = await self._owned_run(request.owner, request.run_id)
        return found if isinstance(found, Refusal) else RunAnswer(run=RunView.of(found[1]))

    async def _events(self, request: ReadEvents) -> EventsAnswer | Refusal:
        found = await self._owned_run(request.owner, request.run_id)
        if isinstance(found, Refusal):
            return found
        store, run = found
        return EventsAnswer(run=RunView.of(run),
                            events=await store.events(run, request.after, request.limit))

    async def _owned_run(self, owner: str, run_id: str
                         ) -> tuple[ThreadStore, RunRecord] | Refusal:
        """The run as committed, if the owner owns the thread; else what to answer."""
        thread_id = self.id.id
        store = committed_store(shared_actor_client(), thread_id)
        record = await store.record()
        if record is None or record.owner != owner:
            return NotFound.of(thread_id)
        run = await store.run(run_id)
        return RunNotFound.of(thread_id, run_id) if run is None else (store, run)
