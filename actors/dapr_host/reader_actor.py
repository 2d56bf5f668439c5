"""The ThreadReader actor: reads of a thread's committed runs and events that never wait
for the thread's own actor.

A run is polled, and a stream's gaps are filled, while a step may hold the Thread actor's
lock for as long as a model call takes; and a thread whose host has died has no actor to
ask until another host takes it over. These reads need neither: one ThreadReader per
thread (the same id) reads the thread's keys from the store through its host's sidecar
(actors/dapr_host/committed.py). Being an actor, it is reached through placement, which sends calls
only to live hosts, so a dead host costs a read no more than placement takes to notice.
"""

from __future__ import annotations

from dapr.actor import Actor, ActorInterface, actormethod

from actors.dapr_host.committed import committed_store
from actors.dapr_host.interface import Payload
from actors.dapr_host.thread_actor import serve
from actors.threads.contract import (
    EventsAnswer,
    ReadEvents,
    ReadRun,
    ReadThreadEvents,
    Refusal,
    RunAnswer,
    RunView,
)
from actors.threads.reads import ThreadReads
from actors.threads.store import ThreadStore
from threadhost.common.sidecar import shared_actor_client


class ThreadReaderInterface(ActorInterface):
    @actormethod(name="ReadRun")
    async def read_run(self, request: Payload) -> Payload: ...

    @actormethod(name="ReadEvents")
    async def read_events(self, request: Payload) -> Payload: ...

    @actormethod(name="ReadThreadEvents")
    async def read_thread_events(self, request: Payload) -> Payload: ...


class ThreadReader(Actor, ThreadReaderInterface):
    """Holds no state of its own: its id is the thread's."""

    async def read_run(self, request: Payload) -> Payload:
        return await serve(ReadRun, request, self._run)

    async def read_events(self, request: Payload) -> Payload:
        return await serve(ReadEvents, request, self._events)

    async def read_thread_events(self, request: Payload) -> Payload:
        reads = ThreadReads(self.id.id, self._store())
        return await serve(ReadThreadEvents, request, reads.thread_events)

    async def _run(self, request: ReadRun) -> RunAnswer | Refusal:
        found = await ThreadReads(self.id.id, self._store()).owned_run(request, request.run_id)
        return found if isinstance(found, Refusal) else RunAnswer(run=RunView.of(found[1]))

    async def _events(self, request: ReadEvents) -> EventsAnswer | Refusal:
        store = self._store()
        found = await ThreadReads(self.id.id, store).owned_run(request, request.run_id)
        if isinstance(found, Refusal):
            return found
        run = found[1]
        return EventsAnswer(
            run=RunView.of(run), events=await store.events(run, request.after, request.limit)
        )

    def _store(self) -> ThreadStore:
        """What the store holds of the thread (read-only)."""
        return committed_store(shared_actor_client(), self.id.id)
