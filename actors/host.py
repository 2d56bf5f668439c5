"""The actor host: registers the Thread actor with the SDK's runtime and serves its stats."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from dapr.actor.runtime.config import ActorRuntimeConfig
from dapr.actor.runtime.runtime import ActorRuntime
from dapr.ext.fastapi import DaprActor
from fastapi import APIRouter, FastAPI

from actors.cancellation import PublishedControl, abort
from actors.committed import committed_store
from actors.contract import EventsAnswer, NotFound, Refusal, RunAnswer, RunNotFound, RunView
from actors.engine.run import RunRecord
from actors.lifecycle import lifecycle
from actors.owner_actor import Owner
from actors.thread_actor import Thread
from actors.thread_store import ThreadStore
from threadhost.actor_client import shared_actor_client
from threadhost.settings import Settings
from threadhost.state_serializer import ActorMessageSerializer, PlainJSONSerializer

log = logging.getLogger(__name__)


def mount_actor_host(app: FastAPI, settings: Settings) -> DaprActor:
    """Adds the routes daprd calls (/dapr/config, /actors/...) and the stats route."""
    stats = APIRouter()

    @stats.get("/internal/actors", tags=["internal"])
    async def actor_stats() -> dict[str, object]:
        return {"instance": settings.instance, **lifecycle.snapshot()}

    async def owned_run(thread_id: str, run_id: str,
                        owner: str) -> tuple[ThreadStore, RunRecord] | Refusal:
        """The run, read past the actor, if the owner owns the thread; else what to
        answer. (Only the app's daprd gets here: threadhost.app.)"""
        store = committed_store(shared_actor_client(), thread_id)
        record = await store.record()
        if record is None or record.owner != owner:
            return NotFound.of(thread_id)
        run = await store.run(run_id)
        return RunNotFound.of(thread_id, run_id) if run is None else (store, run)

    @stats.get("/internal/threads/{thread_id}/runs/{run_id}", tags=["internal"])
    async def committed_run(thread_id: str, run_id: str, owner: str) -> dict[str, Any]:
        found = await owned_run(thread_id, run_id, owner)
        answer = found if isinstance(found, Refusal) else RunAnswer(run=RunView.of(found[1]))
        return answer.model_dump(mode="json")

    @stats.get("/internal/threads/{thread_id}/runs/{run_id}/events", tags=["internal"])
    async def committed_events(thread_id: str, run_id: str, owner: str,
                               after: int = -1, limit: int = 1000) -> dict[str, Any]:
        found = await owned_run(thread_id, run_id, owner)
        if isinstance(found, Refusal):
            return found.model_dump(mode="json")
        store, run = found
        return EventsAnswer(run=RunView.of(run),
                            events=await store.events(run, after, limit)).model_dump(mode="json")

    app.state.subscriptions.append({"pubsubname": settings.pubsub_name,
                                    "topic": settings.control_topic,
                                    "route": "/internal/run-control"})

    @stats.post("/internal/run-control", include_in_schema=False)
    async def run_control(envelope: PublishedControl) -> dict[str, str]:
        """A run was cancelled: abort its step if this host is running it."""
        if abort(envelope.data.run_id):
            log.info("aborted the running step of run %s", envelope.data.run_id)
        return {"status": "SUCCESS"}

    app.include_router(stats)
    return DaprActor(app)


async def register_thread_actor(dapr_actor: DaprActor, settings: Settings) -> None:
    """Called from the app's lifespan: daprd reads /dapr/config once, when the port opens."""
    ActorRuntime.set_actor_config(
        ActorRuntimeConfig(
            actor_idle_timeout=timedelta(seconds=settings.actor_idle_timeout_seconds),
            drain_ongoing_call_timeout=timedelta(
                seconds=settings.drain_ongoing_call_timeout_seconds
            ),
            drain_rebalanced_actors=settings.drain_rebalanced_actors,
        )
    )
    for actor in (Thread, Owner):
        await dapr_actor.register_actor(
            actor, actor_client=shared_actor_client(settings.actor_call_timeout_seconds),
            message_serializer=ActorMessageSerializer(), state_serializer=PlainJSONSerializer())
