"""The actor host: registers the Thread, ThreadReader and Owner actors with the SDK's
runtime and serves its stats."""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from dapr.actor.runtime.config import ActorRuntimeConfig, ActorTypeConfig
from dapr.actor.runtime.runtime import ActorRuntime
from dapr.ext.fastapi import DaprActor
from fastapi import APIRouter, FastAPI

from actors.dapr_host.model_gate import ModelGate
from actors.dapr_host.owner_actor import Owner
from actors.dapr_host.reader_actor import ThreadReader
from actors.dapr_host.thread_actor import Thread
from actors.dapr_host.usage_actor import Usage
from actors.dapr_host.watchdog import watchdog_routes
from actors.dapr_host.webhook_delivery import JOB_PREFIX as WEBHOOK_JOBS
from actors.dapr_host.webhook_delivery import later_attempt, mount_webhook_delivery
from actors.threads.cancellation import PublishedControl, abort
from actors.threads.contract import READER_ACTOR
from actors.threads.lifecycle import lifecycle
from threadhost.common.settings import Settings
from threadhost.common.sidecar import shared_actor_client
from threadhost.common.state_serializer import ActorMessageSerializer, PlainJSONSerializer

log = logging.getLogger(__name__)
READER_IDLE_SECONDS = 60


def mount_actor_host(app: FastAPI, settings: Settings) -> DaprActor:
    """Adds the routes daprd calls (/dapr/config, /actors/...) and the stats route."""
    stats = APIRouter()

    @stats.get("/internal/actors", tags=["internal"])
    async def actor_stats() -> dict[str, object]:
        return {"instance": settings.instance, **lifecycle.snapshot()}

    app.state.subscriptions.append(
        {
            "pubsubname": settings.pubsub_name,
            "topic": settings.control_topic,
            "route": "/internal/run-control",
        }
    )

    @stats.post("/internal/run-control", include_in_schema=False)
    async def run_control(envelope: PublishedControl) -> dict[str, str]:
        """A run was cancelled: abort its step if this host is running it."""
        if abort(envelope.data.run_id):
            log.info("aborted the running step of run %s", envelope.data.run_id)
        return {"status": "SUCCESS"}

    app.include_router(stats)
    deliverer = mount_webhook_delivery(app, settings)
    app.include_router(
        watchdog_routes(
            settings.run_watchdog_seconds, {WEBHOOK_JOBS: partial(later_attempt, deliverer)}
        )
    )
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
            # A reader holds nothing: it may go as soon as its reads stop.
            actor_type_configs=[
                ActorTypeConfig(
                    READER_ACTOR, actor_idle_timeout=timedelta(seconds=READER_IDLE_SECONDS)
                )
            ],
        )
    )
    for actor in (Thread, Owner, ThreadReader, Usage, ModelGate):
        await dapr_actor.register_actor(
            actor,
            actor_client=shared_actor_client(settings.actor_call_timeout_seconds),
            message_serializer=ActorMessageSerializer(),
            state_serializer=PlainJSONSerializer(),
        )
