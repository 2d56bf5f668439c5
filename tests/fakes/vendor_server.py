"""A local HTTP server that answers like a model vendor's API, from a queue of canned replies.

It speaks HTTP, JSON and server-sent events for real, so the official SDKs run unmodified
against it; what each reply says in the vendor's own format comes from `wire.py`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from threadhost.processes import free_port


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    # Server-sent events as (event name or None, data); data is JSON-encoded unless a str.
    events: list[tuple[str | None, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds the stream stays open after its last event before it ends (a stream that
    # stalls, then breaks, as a vendor's does when its connection drops mid-answer).
    ends_after: float = 0.0


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


class VendorServer:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.received: list[Received] = []
        self.port = free_port()
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        self._server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> VendorServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the fake vendor server did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def _handle(self, request: Request) -> Response:
        self.received.append(
            Received(
                path=request.url.path, body=await request.json(), headers=dict(request.headers)
            )
        )
        if not self.replies:
            return JSONResponse({"error": {"message": "no reply queued"}}, status_code=500)
        reply = self.replies.popleft()
        if reply.events is None:
            return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)
        return StreamingResponse(
            _sse(reply.events, reply.ends_after),
            status_code=reply.status,
            media_type="text/event-stream",
            headers=reply.headers,
        )


async def _sse(events: list[tuple[str | None, Any]], ends_after: float) -> AsyncIterator[bytes]:
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        yield ((f"event: {name}\n" if name else "") + f"data: {text}\n\n").encode()
    if ends_after:
        await asyncio.sleep(ends_after)
