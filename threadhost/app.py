"""The ASGI app: gateway, actor host, or both (the embedded default), per settings.role."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.auth import same_token
from gateway.problems import Forbidden, as_problem_documents, install_problem_handlers
from threadhost.common import logs, tracing
from threadhost.common.settings import Settings, get_settings
from threadhost.common.sidecar import shared_actor_client
from threadhost.event_groups import GroupKeeper, StreamGroups
from threadhost.loop_stalls import watch_stalls

log = logging.getLogger(__name__)

# Objects allocated between collections of the youngest generation (Python's default is
# 700). A turn makes thousands (pydantic documents, HTTP messages), so at 700 the cyclic
# collector ran several times a turn: 7% of the actor host's CPU at 10 concurrent clients,
# 1% at 10,000; what it holds back until then is a few megabytes at most.
YOUNG_GENERATION = 10_000


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logs.configure(settings.log_level, settings.log_json, settings.instance)
    traced = tracing.configure(settings.instance, settings.otlp_endpoint, settings.trace_file)
    serves_actors = settings.role in ("embedded", "actors")
    serves_gateway = settings.role in ("embedded", "gateway")
    dapr_actor = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gc.set_threshold(YOUNG_GENERATION, *gc.get_threshold()[1:])
        if dapr_actor is not None:
            from actors.dapr_host.host import register_thread_actor

            await register_thread_actor(dapr_actor, settings)
        keeper = _event_groups(settings, serves_gateway, serves_actors)
        keeper.start()
        stalls = asyncio.create_task(watch_stalls())
        yield
        if serves_gateway:
            await app.state.mcp_door.aclose()
        stalls.cancel()
        await keeper.stop()
        if serves_actors:
            from actors.dapr_host.engine_setup import close_engine

            await close_engine()  # MCP servers it started over stdio stop with it

    app = FastAPI(title="threadhost", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    # Each role adds the pub/sub topics it reads; daprd asks once, at start-up.
    app.state.subscriptions = []
    app.include_router(_own_routes(settings))
    if serves_actors:
        from actors.dapr_host.host import mount_actor_host

        dapr_actor = mount_actor_host(app, settings)
    if serves_gateway:
        from gateway.app import mount_gateway

        mount_gateway(app, settings)
    install_problem_handlers(app)
    _published_schema(app)
    token = settings.app_api_token
    if token is None and settings.auth_mode == "none":
        log.warning(
            "no APP_API_TOKEN: daprd's routes (actor calls, /internal/*) answer "
            "anyone who reaches this port. For local development only."
        )
    if serves_actors:  # inside SidecarOnly: daprd's token is checked first
        from actors.dapr_host.actor_calls import ActorMethodCalls

        app.add_middleware(ActorMethodCalls)
    app.add_middleware(SidecarOnly, token=token.get_secret_value() if token else None)
    if traced:
        tracing.instrument(app)
    return app


def _own_routes(settings: Settings) -> APIRouter:
    """What every role serves: its health, its subscriptions (for daprd), its metrics."""
    router = APIRouter()

    @router.get("/health", tags=["internal"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "role": settings.role, "instance": settings.instance}

    @router.get("/dapr/subscribe", include_in_schema=False)
    async def subscriptions(request: Request) -> list[dict[str, str]]:
        return request.app.state.subscriptions

    @router.get("/metrics", tags=["internal"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def _event_groups(settings: Settings, gateway: bool, actors: bool) -> GroupKeeper:
    """This replica's consumer groups on the run-event streams, kept bounded."""
    streams = (
        *([settings.events_topic] if gateway else []),
        *([settings.control_topic] if actors else []),
    )
    groups = None
    if settings.pod_name and settings.redis_host:
        password = settings.redis_password
        groups = StreamGroups(
            settings.redis_host,
            password.get_secret_value() if password else None,
            settings.pod_name,
            streams,
            settings.event_group_sweep_seconds,
        )
    return GroupKeeper(groups, shared_actor_client().metadata, settings.pubsub_name)


def _published_schema(app: FastAPI) -> None:
    """The OpenAPI document: daprd's callbacks and the internal routes stay out of it,
    and every error answer is described as the problem document it is sent as."""
    full = app.openapi

    def public() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = full()
            schema["paths"] = {
                path: item for path, item in schema["paths"].items() if route_owner(path) != "daprd"
            }
            as_problem_documents(schema)
        return app.openapi_schema or {}

    app.openapi = public  # type: ignore[method-assign]


# Who may call which path (docs/security.md says the same for operators):
# - open: health, metrics and the API's documentation (close them at the ingress);
# - /v1/: people with a bearer token, or services through Dapr (gateway/auth.py);
# - everything else: daprd alone, which proves it with the app's token: actor
#   callbacks, /dapr/*, pub/sub deliveries and every /internal/* route.
OPEN_PATHS = frozenset(
    {
        "/health",
        "/metrics",
        "/docs",
        "/docs/oauth2-redirect",
        "/openapi.json",
        "/redoc",
        # The public keys that verify end-user assertions (gateway/key_set.py).
        "/.well-known/jwks.json",
        # The default agent's A2A card (discovery; gateway/a2a_door.py).
        "/.well-known/agent-card.json",
        # The web chat's files: no data, which it reads from /v1.
        "/",
        "/chat",
        "/chat/chat.js",
        "/chat/chat.css",
    }
)
RouteOwner = Literal["open", "callers", "daprd"]


def route_owner(path: str) -> RouteOwner:
    if path in OPEN_PATHS:
        return "open"
    return "callers" if path.startswith("/v1/") or path == "/v1" else "daprd"


class SidecarOnly:
    """Refuses daprd's paths to callers without Dapr's APP_API_TOKEN (403): else anyone
    reaching the app's port could call an actor method or forge a run's events. Without
    a token (local development only: gateway/auth.py requires one with authentication
    on) nothing can tell daprd apart, and the launcher always sets one."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and self.token is not None
            and route_owner(scope["path"]) == "daprd"
        ):
            # As bytes: a header of any bytes is simply not the token.
            sent = dict(scope["headers"]).get(b"dapr-api-token", b"")
            if not same_token(sent, self.token):
                await Forbidden(
                    "this path answers only the app's own daprd", title="For the Dapr sidecar only"
                ).response()(scope, receive, send)
                return
        await self.app(scope, receive, send)
