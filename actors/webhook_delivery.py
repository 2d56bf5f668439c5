"""The actor host's webhook deliverer: a Dapr pub/sub subscriber that POSTs each event to
its webhook, signed (engine/webhooks.py), never inside a thread's turn.

A delivery that is not taken (no answer, or an answer other than 2xx) is answered RETRY:
daprd tries it again with backoff, by the Resiliency policy of the `threadevents`
component (components/*/resiliency.yaml), and a Redis stream keeps it pending across
restarts of the host, so it is delivered at least once, with the same `webhook-id` each
time. One that is never taken ends on the dead-letter topic `<webhooks_topic>-dead`.
All the actor hosts share one consumer group (their app-id): each delivery goes to one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from actors.engine.events import WebhookDelivery
from actors.engine.webhooks import signature
from actors.service_mesh import DaprMesh
from threadhost.settings import Settings

log = logging.getLogger(__name__)


class DeliveryEnvelope(BaseModel):
    """What daprd delivers: the CloudEvent it wrapped the delivery in."""

    id: str = ""
    data: WebhookDelivery


def mount_webhook_delivery(app: FastAPI, settings: Settings) -> None:
    app.state.subscriptions.append({"pubsubname": settings.thread_events_pubsub,
                                    "topic": settings.webhooks_topic,
                                    "route": "/internal/webhooks",
                                    "deadLetterTopic": f"{settings.webhooks_topic}-dead"})
    mesh = DaprMesh(settings.secret_store)
    router = APIRouter()
    # Made with the app, not on the event loop: a client builds its TLS context.
    client = httpx.AsyncClient(timeout=settings.webhook_timeout_seconds)

    @router.post("/internal/webhooks", include_in_schema=False)
    async def deliver(envelope: DeliveryEnvelope) -> dict[str, Any]:
        delivery = envelope.data
        try:
            key = (await mesh.secret(delivery.secret))[delivery.key]
        except Exception as exc:  # noqa: BLE001 - no store, no secret, no key: retried
            log.warning("webhook of agent %s: no signing key (%s): retried later",
                        delivery.agent, type(exc).__name__)
            return {"status": "RETRY"}
        body = delivery.event.model_dump_json().encode()
        stamp = int(time.time())
        headers = {"content-type": "application/cloudevents+json",
                   "webhook-id": delivery.event.id, "webhook-timestamp": str(stamp),
                   "webhook-signature": signature(key, delivery.event.id, stamp, body)}
        try:
            answer = await client.post(delivery.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("webhook %s: event %s not delivered (%s): retried later",
                        _where(delivery.url), delivery.event.id, type(exc).__name__)
            return {"status": "RETRY"}
        if not answer.is_success:
            log.warning("webhook %s: event %s answered %d: retried later",
                        _where(delivery.url), delivery.event.id, answer.status_code)
            return {"status": "RETRY"}
        return {"status": "SUCCESS"}

    app.include_router(router)


def _where(url: str) -> str:
    """A webhook's URL without its path and query, which may hold a token."""
    parts = httpx.URL(url)
    return f"{parts.scheme}://{parts.host}{':' + str(parts.port) if parts.port else ''}"
