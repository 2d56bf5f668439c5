"""A webhook receiver that fails the first two attempts at each event (503), then takes
it, checking its signature the Standard Webhooks way with the key it was given. Run as
`python -m tests.fakes.webhook_receiver PORT KEY`; `GET /seen` lists every attempt."""

from __future__ import annotations

import base64
import hashlib
import hmac
import sys
import time

import uvicorn
from fastapi import FastAPI, Request, Response

app = FastAPI()
seen: list[dict] = []
KEY = sys.argv[2] if len(sys.argv) > 2 else ""


def verified(event_id: str, timestamp: str, body: bytes, header: str) -> bool:
    expected = hmac.new(KEY.encode(), f"{event_id}.{timestamp}.".encode() + body,
                        hashlib.sha256).digest()
    given = [part.removeprefix("v1,") for part in header.split() if part.startswith("v1,")]
    fresh = abs(time.time() - int(timestamp)) < 300  # older ones are replays
    return fresh and any(hmac.compare_digest(base64.b64decode(g), expected) for g in given)


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@app.post("/hook")
async def hook(request: Request) -> Response:
    body = await request.body()
    event_id = request.headers.get("webhook-id", "")
    attempt = 1 + sum(1 for s in seen if s["id"] == event_id)
    seen.append({"id": event_id, "attempt": attempt, "body": body.decode(),
                 "valid": verified(event_id, request.headers.get("webhook-timestamp", "0"),
                                   body, request.headers.get("webhook-signature", "")),
                 "taken": attempt > 2})
    return Response(status_code=204 if attempt > 2 else 503)


@app.get("/seen")
async def what_it_saw() -> list[dict]:
    return seen


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
