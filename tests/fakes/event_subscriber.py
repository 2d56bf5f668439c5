"""Another team's microservice that hears threadhost's thread events through Dapr pub/sub,
with a programmatic subscription. Run as `python -m tests.fakes.event_subscriber PORT
[TOPIC]` (thread-events unless given); `GET /seen` gives the CloudEvents it got, in the
order it got them."""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI, Request

app = FastAPI()
seen: list[dict] = []
TOPIC = sys.argv[2] if len(sys.argv) > 2 else "thread-events"


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@app.get("/dapr/subscribe")
async def subscribe() -> list[dict]:
    return [{"pubsubname": "threadevents", "topic": TOPIC, "route": "/events"}]


@app.post("/events")
async def events(request: Request) -> dict:
    seen.append(
        {"content_type": request.headers.get("content-type"), "event": await request.json()}
    )
    return {"status": "SUCCESS"}


@app.get("/seen")
async def what_it_saw() -> list[dict]:
    return seen


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
