"""The actor host: registers the Thread actor with the SDK's runtime and serves its stats."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dapr.actor.runtime.config import ActorRuntimeConfig
from dapr.actor.runtime.runtime import ActorRuntime
from dapr.ext.fastapi import DaprActor
from fastapi import APIRouter, FastAPI

from actors.committed import committed_store
from actors.lifecycle import lifecycle
from actors.thread_actor import Thread, run_view
from threadhost.actor_client import shared_actor_client
from threadhost.settings import Settings
from threadhost.state_serializer import PlainJSONSerializer


def mount_actor_host(app: FastAPI, settings: Settings) -> DaprActor:
    """Adds the routes daprd calls (/dapr/config, /actors/...) and the stats route."""
    stats = APIRouter()

    @stats.get("/internal/actors", tags=["internal"])
    async def actor_stats() -> dict[str, object]:
        return {"instance": settings.instance, **lifecycle.snapshot()}

    @stats.get("/internal/threads/{thread_id}/runs/{run_id}", tags=["internal"])
    async def committed_run(thread_id: str, run_id: str) -> dict[str, Any]:
        run = await committed_store(shared_actor_client(), thread_id).run(run_id)
        return {"status": "not_found"} if run is None else {"status": "ok", "run": run_view(run)}

    @stats.get("/internal/threads/{thread_id}/runs/{run_id}/events", tags=["internal"])
    async def committed_events(thread_id: str, run_id: str, after: int = -1,
                               limit: int = 1000) -> dict[str, Any]:
        store = committed_store(shared_actor_client(), thread_id)
        run = await store.run(run_id)
        if run is None:
            return {"status": "not_found"}
        events = await store.events(run, after, limit)
        return {"status": "ok", "run": run_view(run),
                "events": [e.model_dump(mode="json") for e in events]}

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
    await dapr_actor.register_actor(
        Thread, actor_client=shared_actor_client(settings.actor_call_timeout_seconds),
        state_serializer=PlainJSONSerializer())
