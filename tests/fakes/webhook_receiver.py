"""A webhook receiver that fails the first two attempts at each event (503), then takes
it, checking its signature with the official Standard Webhooks library and the secret it
was given, as docs/events.md tells a receiver to. Run as
`python -m tests.fakes.webhook_receiver PORT SECRET [REFUSED]` (REFUSED: attempts refused
before one is taken, 2 unless given); `GET /seen` lists every attempt, with the end-user
headers it carried."""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

app = FastAPI()
seen: list[dict] = []
SECRET = sys.argv[2] if len(sys.argv) > 2 else "whsec_"
# How many attempts at each event it refuses before it takes one.
REFUSED = int(sys.argv[3]) if len(sys.argv) > 3 else 2


def verified(body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(SECRET).verify(body, headers)  # also refuses a stale timestamp (replays)
    except WebhookVerificationError:
        return False
    return True


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@app.post("/hook")
async def hook(request: Request) -> Response:
    body = await request.body()
    event_id = request.headers.get("webhook-id", "")
    attempt = 1 + sum(1 for s in seen if s["id"] == event_id)
    seen.append(
        {
            "id": event_id,
            "attempt": attempt,
            "body": body.decode(),
            "valid": verified(body, dict(request.headers)),
            "taken": attempt > REFUSED,
            # Whom the thread is run for, when a service runs it for an end user.
            "end_user": request.headers.get("threadhost-end-user"),
            "assertion": request.headers.get("threadhost-end-user-assertion"),
            # An A2A push notification's token, as its client gave it.
            "token": request.headers.get("x-a2a-notification-token"),
        }
    )
    return Response(status_code=204 if attempt > REFUSED else 503)


@app.get("/seen")
async def what_it_saw() -> list[dict]:
    return seen


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
