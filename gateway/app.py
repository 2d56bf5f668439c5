"""Puts the gateway's routes and error handling on an app."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import RedirectResponse

from actors.engine.agents import AgentCatalog
from actors.engine.run import StatusChanged
from actors.threads.contract import STOPPED
from actors.threads.run_events import PublishedRunMessage, StepEventsMessage
from gateway import (
    a2a_door,
    followups,
    forks,
    key_set,
    openai_door,
    responses_door,
    thread_events,
    threads,
    usage,
)
from gateway.auth import Authenticator
from gateway.key_set import KeySet
from gateway.problems import BodyTooLarge, answer_at
from gateway.run_stream import RunEventHub
from gateway.thread_client import ThreadClient
from threadhost.common.run_signals import run_changed
from threadhost.common.settings import Settings


class BodyLimit:
    """413 for a public request whose body is larger than `limit`, declared or sent."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        too_large = answer_at(scope["path"], BodyTooLarge(f"the limit is {self.limit} bytes"))
        if declared is not None:
            if declared.isdigit() and int(declared) > self.limit:
                await too_large(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        # No declared length (a chunked body): read it here, up to the limit, then replay.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size, more = size + len(chunks[-1]), message.get("more_body", False)
            if size > self.limit:
                await too_large(scope, receive, send)
                return
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed() -> dict:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)


class LazyMcpDoor:
    """The MCP door (gateway/mcp_door.py), made at its first request: the `mcp` SDK takes
    over a second to import, which neither every start nor the event loop should pay."""

    def __init__(self, catalog: AgentCatalog, state: Any) -> None:
        self._catalog, self._state = catalog, state
        self._door: Any = None
        self._making = asyncio.Lock()
        self._held: asyncio.Task[None] | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await (await self._made())(scope, receive, send)

    async def _made(self) -> Any:
        if self._door is None:
            async with self._making:
                if self._door is None:
                    module = await asyncio.to_thread(importlib.import_module, "gateway.mcp_door")
                    door = module.McpDoor(self._catalog, self._state)
                    running = asyncio.Event()
                    self._held = asyncio.create_task(self._hold(door, running))
                    await running.wait()
                    self._door = door
        return self._door

    @staticmethod
    async def _hold(door: Any, running: asyncio.Event) -> None:
        """Its session manager runs (in this one task) until the app stops."""
        async with door.session_manager().run():
            running.set()
            await asyncio.Event().wait()

    async def aclose(self) -> None:
        if self._held is not None:
            self._held.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._held


CHAT_PAGE = Path(__file__).parent / "chat_page"
# The page holds no data (it calls /v1 with the caller's token): nothing it may load from
# elsewhere, nothing it may be framed by.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
PAGE_FILES = {
    "/chat": ("index.html", "text/html; charset=utf-8"),
    "/chat/chat.js": ("chat.js", "text/javascript; charset=utf-8"),
    "/chat/chat.css": ("chat.css", "text/css; charset=utf-8"),
}


def mount_chat_page(app: FastAPI) -> None:
    """The web chat at /chat (and / leads there): plain files, read once at start-up."""
    for path, (name, media_type) in PAGE_FILES.items():
        content = (CHAT_PAGE / name).read_bytes()

        async def serve(content: bytes = content, media_type: str = media_type) -> Response:
            return Response(content, media_type=media_type, headers=PAGE_HEADERS)

        app.add_api_route(path, serve, methods=["GET"], include_in_schema=False)

    async def home() -> Response:
        return RedirectResponse("/chat")

    app.add_api_route("/", home, methods=["GET"], include_in_schema=False)


def mount_gateway(app: FastAPI, settings: Settings) -> None:
    # A waiting call takes the run's first steps: the slowest is a model call that may
    # use the provider's whole timeout.
    app.state.thread_client = ThreadClient(
        settings.actor_call_timeout_seconds,
        settings.pubsub_name,
        settings.control_topic,
        settings.actor_call_timeout_seconds + settings.provider_timeout_seconds,
        settings.failover_retry_seconds,
        settings.read_call_timeout_seconds,
    )
    app.state.run_events = hub = RunEventHub(settings.max_streams_per_caller)
    app.state.authenticator = Authenticator(settings)
    # The agents' names, for the OpenAI door's models (read once, at start-up).
    app.state.agent_catalog = catalog = AgentCatalog()
    for folder in settings.agents_dirs:
        catalog.load_folder(folder)
    app.include_router(threads.end_users)
    app.include_router(threads.router)
    app.include_router(threads.turns)
    app.include_router(thread_events.router)
    app.include_router(forks.router)
    app.include_router(a2a_door.router)
    app.include_router(followups.router)
    app.include_router(openai_door.router)
    app.include_router(responses_door.router)
    app.include_router(usage.router)
    app.state.key_set = KeySet(settings)
    app.include_router(key_set.router)
    mount_chat_page(app)
    # MCP's streamable HTTP at /v1/mcp (a route of callers): the door's own ASGI app.
    app.state.mcp_door = door = LazyMcpDoor(catalog, app.state)
    # An ASGI app as the route's endpoint (Starlette calls it with scope, receive, send).
    app.add_route(
        "/v1/mcp",
        door,  # type: ignore[arg-type]
        methods=["GET", "POST", "DELETE"],
        include_in_schema=False,
    )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    app.state.subscriptions.append(
        {
            "pubsubname": settings.pubsub_name,
            "topic": settings.events_topic,
            "route": "/internal/run-events",
        }
    )

    @app.post("/internal/run-events", include_in_schema=False)
    async def run_events(envelope: PublishedRunMessage) -> dict[str, str]:
        """daprd delivers what actors published (threadhost.app: for daprd only). A run
        that stopped also wakes the requests of this replica that wait for it."""
        message = envelope.data
        hub.deliver(message.model_dump(mode="json"))
        if isinstance(message, StepEventsMessage) and any(
            isinstance(event, StatusChanged) and event.status in STOPPED for event in message.events
        ):
            run_changed(message.run_id)
        return {"status": "SUCCESS"}
