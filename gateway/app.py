"""Puts the gateway's routes and error handling on an app."""

from __future__ import annotations

from fastapi import FastAPI, Request

from gateway import threads
from gateway.auth import Authenticator
from gateway.problems import install_problem_handlers
from gateway.run_stream import RunEventHub
from gateway.thread_client import ThreadClient
from threadhost.settings import Settings


def mount_gateway(app: FastAPI, settings: Settings) -> None:
    app.state.thread_client = ThreadClient(settings.actor_call_timeout_seconds,
                                           settings.actors_app_id)
    app.state.run_events = hub = RunEventHub()
    app.state.authenticator = Authenticator(settings)
    app.include_router(threads.router)
    install_problem_handlers(app)

    @app.get("/dapr/subscribe", include_in_schema=False)
    async def subscriptions() -> list[dict[str, str]]:
        return [{"pubsubname": settings.pubsub_name, "topic": settings.events_topic,
                 "route": "/internal/run-events"}]

    @app.post("/internal/run-events", include_in_schema=False)
    async def run_events(request: Request) -> dict[str, str]:
        envelope = await request.json()
        hub.deliver(envelope.get("data") or {})
        return {"status": "SUCCESS"}
