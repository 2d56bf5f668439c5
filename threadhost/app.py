"""The ASGI app: gateway, actor host, or both (the embedded default), per settings.role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from threadhost import logs, tracing
from threadhost.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logs.configure(settings.log_level, settings.log_json, settings.instance)
    tracing.configure(settings.instance, settings.otlp_endpoint, settings.trace_file)
    serves_actors = settings.role in ("embedded", "actors")
    serves_gateway = settings.role in ("embedded", "gateway")
    dapr_actor = None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if dapr_actor is not None:
            from actors.host import register_thread_actor

            await register_thread_actor(dapr_actor, settings)
        yield

    app = FastAPI(title="threadhost", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.add_middleware(tracing.TraceMiddleware)

    @app.get("/health", tags=["internal"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "role": settings.role, "instance": settings.instance}

    @app.get("/metrics", tags=["internal"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    if serves_actors:
        from actors.host import mount_actor_host

        dapr_actor = mount_actor_host(app, settings)
    if serves_gateway:
        from gateway.app import mount_gateway

        mount_gateway(app, settings)
    return app
