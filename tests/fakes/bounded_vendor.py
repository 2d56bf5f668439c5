"""A model vendor with a rate limit on concurrent requests: above `limit` requests at
once it answers 429 as OpenAI does (its error body, `retry-after`), otherwise it takes
`latency` seconds and streams a reply in OpenAI's chat completions wire format. It counts
the peak concurrency it saw, what it served and what it refused."""

from __future__ import annotations

import asyncio
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.vendor_server import _sse
from tests.fakes.wire import Answer, OpenAIChatWire
from threadhost.processes import free_port

# OpenAI's answer to a request over a rate limit (its API reference's error object).
RATE_LIMITED = {
    "error": {
        "message": "Rate limit reached for gpt-4o-mini in organization org-bench on "
        "requests per min (RPM): Limit 20, Used 20, Requested 1. Please try again in 1s.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}


class BoundedVendor:
    def __init__(self, limit: int, latency: float, reply: str = "Checked in.") -> None:
        self.limit, self.latency, self.reply = limit, latency, reply
        self.current = self.peak = self.served = self.refused = 0
        self.last_served_at = 0.0
        self.port = free_port()
        app = Starlette(routes=[Route("/v1/chat/completions", self._handle, methods=["POST"])])
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
                backlog=4096,
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> BoundedVendor:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the bounded vendor did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    async def _handle(self, request: Request) -> Response:
        await request.body()
        if self.current >= self.limit:
            self.refused += 1
            return JSONResponse(RATE_LIMITED, status_code=429, headers={"retry-after": "1"})
        self.current += 1
        self.peak = max(self.peak, self.current)
        try:
            await asyncio.sleep(self.latency)
            reply = OpenAIChatWire().stream(Answer(text=self.reply))
            assert reply.events is not None
            body = b"".join([chunk async for chunk in _sse(reply.events, 0)])
        finally:
            self.current -= 1
        self.served += 1
        self.last_served_at = time.monotonic()
        return StreamingResponse(iter([body]), media_type="text/event-stream")
