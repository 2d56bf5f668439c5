"""The actor host's webhook deliverer: a Dapr pub/sub subscriber that POSTs each event to
its webhook, signed (engine/webhooks.py), never inside a thread's turn.

A delivery is tried once when it arrives. One not taken (no answer in time, or an answer
other than 2xx) is tried again later by a Dapr job of this app, backing off (0.5 s, 1 s,
2 s, ... up to a minute apart, MAX_ATTEMPTS in all, about ten minutes), so it stays due
across restarts of every host, with the same `webhook-id` each time: at least once. The
pub/sub delivery is answered at once either way, so no subscriber worker waits on a
destination, and a destination that failed is left alone for a while (its deliveries
wait for their next attempt without a connection made): one slow or failing destination
holds up nobody else's deliveries. A delivery that can never be made (a URL that is not
one, a signing secret that is not one) and one whose attempts ran out go to the
dead-letter topic `<webhooks_topic>-dead` at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel

from actors.dapr_host.service_mesh import DaprMesh
from actors.engine.assertions import AssertionSigner
from actors.engine.events import WebhookDelivery
from actors.engine.webhooks import UnusableUrl, WebhookTarget, signature
from threadhost.common.a2a_tasks import push_notification
from threadhost.common.host_secrets import assertion_signer, stored_secrets
from threadhost.common.settings import Settings
from threadhost.common.sidecar import shared_actor_client

log = logging.getLogger(__name__)

JOB_PREFIX = "webhook-"
MAX_ATTEMPTS = 16
FIRST_PAUSE, LONGEST_PAUSE = 0.5, 60.0


class DeliveryEnvelope(BaseModel):
    """What daprd delivers: the CloudEvent it wrapped the delivery in."""

    id: str = ""
    data: WebhookDelivery


class LaterAttempt(BaseModel):
    """A job's data: the delivery, which attempt this is, and the body every attempt
    sends (as text: the job's data is JSON that daprd re-encodes, `0.0` as `0`, and a
    retry's body must be the first attempt's, byte for byte)."""

    delivery: WebhookDelivery
    attempt: int
    body: str


class Undeliverable(Exception):
    """A delivery that no later attempt can make: it goes to the dead-letter topic."""


def backoff(times: int) -> float:
    """The pause after `times` failures in a row (1: the first)."""
    return min(FIRST_PAUSE * 2 ** (times - 1), LONGEST_PAUSE)


class Destinations:
    """How each destination (scheme, host, port) fares on this host: one that gave no
    answer (it hung past the timeout, or refused the connection) is left alone until its
    pause is over (doubling with each such failure, a minute at most), and one is sent at
    most IN_FLIGHT deliveries at once (a slow one holds no more). One that answers, even
    with an error, costs nobody else anything: its deliveries are simply tried again."""

    IN_FLIGHT = 2

    def __init__(self) -> None:
        self._failing: dict[tuple[str, str, int], tuple[int, float]] = {}
        self._sending: dict[tuple[str, str, int], int] = {}

    def take(self, target: WebhookTarget) -> bool:
        """Whether a delivery may go to it now (then `done` must follow)."""
        where = self._of(target)
        _, until = self._failing.get(where, (0, 0.0))
        if time.monotonic() < until or self._sending.get(where, 0) >= self.IN_FLIGHT:
            return False
        self._sending[where] = self._sending.get(where, 0) + 1
        return True

    def done(self, target: WebhookTarget, answered: bool | None) -> None:
        """A delivery `take` let through is over: it got an answer, none, or (None) it
        was never sent."""
        where = self._of(target)
        self._sending[where] -= 1
        if not self._sending[where]:
            del self._sending[where]
        if answered is None:
            return
        if answered:
            self._failing.pop(where, None)
            return
        failures = self._failing.get(where, (0, 0.0))[0] + 1
        self._failing[where] = (failures, time.monotonic() + backoff(failures))

    @staticmethod
    def _of(target: WebhookTarget) -> tuple[str, str, int]:
        return target.scheme, target.host, target.port


class WebhookDeliverer:
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self._settings, self._http = settings, http
        self._mesh = DaprMesh(settings.secret_store)
        self._destinations = Destinations()
        self.dead_topic = f"{settings.webhooks_topic}-dead"
        self._signer: AssertionSigner | None = None
        self._signer_read = False

    async def _end_user(self, delivery: WebhookDelivery) -> dict[str, str]:
        """The headers naming the end user the thread belongs to, with a fresh assertion
        for the webhook's URL (the signer is read with the host's secrets, once)."""
        if delivery.acting_for is None:
            return {}
        if not self._signer_read:
            self._signer = assertion_signer(self._settings, await stored_secrets(self._settings))
            self._signer_read = True
        named = {"threadhost-end-user": delivery.acting_for.user}
        if self._signer is None:
            return named
        assertion = self._signer.sign(
            delivery.acting_for, delivery.url, thread_id=delivery.event.subject.split("/")[0]
        )
        return {**named, "threadhost-end-user-assertion": assertion}

    async def attempt(
        self, delivery: WebhookDelivery, attempt: int, body: str | None = None
    ) -> None:
        """One attempt; not taken, the next is scheduled (raises on a scheduler that
        cannot take it: the caller's daprd then tries this one again)."""
        body = body if body is not None else _body(delivery)
        try:
            if await self._taken(delivery, body.encode()):
                return
        except Undeliverable as exc:
            await self._dead(delivery, str(exc))
            return
        if attempt >= MAX_ATTEMPTS:
            await self._dead(delivery, f"not taken in {MAX_ATTEMPTS} attempts")
            return
        await shared_actor_client().schedule_job(
            _job_name(delivery),
            {
                "dueTime": f"{backoff(attempt):g}s",
                "overwrite": True,
                "data": LaterAttempt(delivery=delivery, attempt=attempt + 1, body=body).model_dump(
                    mode="json"
                ),
            },
        )

    async def _taken(self, delivery: WebhookDelivery, body: bytes) -> bool:
        try:
            target = WebhookTarget.of(delivery.url)
        except UnusableUrl as exc:
            raise Undeliverable(f"its URL cannot be delivered to: {exc}") from None
        if not self._destinations.take(target):
            return False  # resting after a failure, or busy with others: later
        answered: bool | None = None  # nothing sent yet
        answer: httpx.Response | None = None
        try:
            headers = await self._signed(delivery, body)
            if headers is None:
                return False
            try:
                answer = await self._http.post(delivery.url, content=body, headers=headers)
                answered, outcome = True, f"answered {answer.status_code}"
            except httpx.HTTPError as exc:
                answered, outcome = False, type(exc).__name__
        finally:
            self._destinations.done(target, answered)
        if answer is not None and answer.is_success:
            return True
        log.warning(
            "webhook %s: event %s not taken (%s): tried again later",
            _where(target),
            delivery.event.id,
            outcome,
        )
        return False

    async def _signed(self, delivery: WebhookDelivery, body: bytes) -> dict[str, str] | None:
        """The attempt's headers, signed; None while its key cannot be read."""
        try:
            key = (await self._mesh.secret(delivery.secret))[delivery.key]
        except Exception as exc:  # noqa: BLE001 - no store, no secret, no key: later
            log.warning(
                "webhook of agent %s: no signing key (%s): tried again later",
                delivery.agent,
                type(exc).__name__,
            )
            return None
        stamp = int(time.time())
        try:
            signed = signature(key, delivery.event.id, stamp, body)
        except ValueError as exc:
            raise Undeliverable(f"its signing secret: {exc}") from None
        pushed = delivery.a2a
        token = {"x-a2a-notification-token": pushed.token} if pushed and pushed.token else {}
        return {
            **await self._end_user(delivery),
            **token,
            "content-type": "application/json" if pushed else "application/cloudevents+json",
            "webhook-id": delivery.event.id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signed,
        }

    async def _dead(self, delivery: WebhookDelivery, why: str) -> None:
        log.error(
            "webhook of agent %s: event %s dead-lettered: %s",
            delivery.agent,
            delivery.event.id,
            why,
        )
        await shared_actor_client().publish(
            self._settings.thread_events_pubsub,
            self.dead_topic,
            delivery.model_dump_json().encode(),
        )


def _body(delivery: WebhookDelivery) -> str:
    """What the POST says: the thread event, or for an A2A push notification the task's
    status update in the protocol's JSON."""
    if delivery.a2a is None:
        return delivery.event.model_dump_json()
    return json.dumps(push_notification(delivery.event.data, delivery.event.time))


def _job_name(delivery: WebhookDelivery) -> str:
    """One job per event and URL: a delivery's attempts replace each other."""
    digest = hashlib.sha256(f"{delivery.event.id}\n{delivery.url}".encode()).hexdigest()
    return JOB_PREFIX + digest[:32]


def mount_webhook_delivery(app: FastAPI, settings: Settings) -> WebhookDeliverer:
    # Made with the app, not on the event loop: a client builds its TLS context.
    deliverer = WebhookDeliverer(
        settings, httpx.AsyncClient(timeout=settings.webhook_timeout_seconds)
    )
    app.state.subscriptions.append(
        {
            "pubsubname": settings.thread_events_pubsub,
            "topic": settings.webhooks_topic,
            "route": "/internal/webhooks",
            "deadLetterTopic": deliverer.dead_topic,
        }
    )
    router = APIRouter()

    @router.post("/internal/webhooks", include_in_schema=False)
    async def deliver(envelope: DeliveryEnvelope) -> dict[str, Any]:
        try:
            await deliverer.attempt(envelope.data, 1)
        except Exception as exc:  # noqa: BLE001 - the next attempt could not be scheduled
            log.warning(
                "webhook delivery %s: its next attempt could not be scheduled (%s)",
                envelope.data.event.id,
                type(exc).__name__,
            )
            return {"status": "RETRY"}
        return {"status": "SUCCESS"}

    app.include_router(router)
    return deliverer


async def later_attempt(deliverer: WebhookDeliverer, request: Request) -> None:
    """A job of the deliverer fired (actors/dapr_host/watchdog.py's job route hands it here); a
    failure to schedule the next attempt fails the firing, which the scheduler repeats."""
    later = LaterAttempt.model_validate_json(await request.body())
    await deliverer.attempt(later.delivery, later.attempt, later.body)


def _where(target: WebhookTarget) -> str:
    """A webhook's destination without its path and query, which may hold a token."""
    return f"{target.scheme}://{target.host}:{target.port}"
