"""The ASGI app: gateway, actor host, or both (the embedded default), per settings.role."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
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
    # Each role adds the pub/sub topics it reads; daprd asks once, at start-up.
    app.state.subscriptions = []
    app.add_middleware(tracing.TraceMiddleware)

    @app.get("/health", tags=["internal"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "role": settings.role, "instance": settings.instance}

    @app.get("/dapr/subscribe", include_in_schema=False)
    async def subscriptions() -> list[dict[str, str]]:
        return app.state.subscriptions

    @app.get("/metrics", tags=["internal"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    if serves_actors:
        from actors.host import mount_actor_host

        dapr_actor = mount_actor_host(app, settings)
    if serves_gateway:
        from gateway.app import mount_gateway

        mount_gateway(app, settings)
    _public_schema_only(app)
    if settings.app_api_token is not None:
        app.add_middleware(SidecarOnly, token=settings.app_api_token.get_secret_value())
    return app


def _public_schema_only(app: FastAPI) -> None:
    """daprd's callbacks and the internal reads stay out of the published OpenAPI."""
    full = app.openapi

    def public() -> dict[str, Any]:
        schema = full()
        schema["paths"] = {path: item for path, item in schema["paths"].items()
                           if not path.startswith((*SIDECAR_ONLY, "/internal"))}
        return schema

    app.openapi = public  # type: ignore[method-assign]


# Paths only daprd (or threadhost's own sidecars) may call.
SIDECAR_ONLY = ("/actors", "/dapr", "/internal/threads", "/healthz")


class SidecarOnly:
    """With Dapr's APP_API_TOKEN set, refuses sidecar-only paths to callers without it:
    else anyone reaching the app's port could call an actor method directly."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(SIDECAR_ONLY):
            sent = dict(scope["headers"]).get(b"dapr-api-token", b"").decode("latin-1")
            if not hmac.compare_digest(sent, self.token):
                await JSONResponse({"title": "for the Dapr sidecar only", "status": 403},
                                   status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)
