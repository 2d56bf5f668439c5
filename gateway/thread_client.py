"""Calls Thread actors through the local Dapr sidecar, and maps its failures to problems."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import aiohttp
from dapr.actor import ActorId, ActorProxy
from dapr.clients.exceptions import DaprInternalError

from actors.cancellation import CancelMessage
from actors.interface import ACTOR_TYPE, Payload, ThreadActorInterface
from actors.owner_actor import OWNER_ACTOR_TYPE, OwnerInterface, owner_actor_id
from gateway.problems import Problem, run_not_found, thread_not_found
from threadhost.actor_client import shared_actor_client
from threadhost.state_serializer import PlainJSONSerializer

log = logging.getLogger(__name__)


class ThreadClient:
    def __init__(self, call_timeout_seconds: int, actors_app_id: str, pubsub: str,
                 control_topic: str) -> None:
        self._actors_app_id = actors_app_id
        self._pubsub, self._control_topic = pubsub, control_topic
        self._actors = shared_actor_client(call_timeout_seconds)
        # Plain JSON: the SDK's default decoder turns date-like strings into datetimes.
        self._serializer = PlainJSONSerializer()

    def _proxy(self, thread_id: str) -> ActorProxy:
        return ActorProxy(self._actors, ACTOR_TYPE, ActorId(thread_id), ThreadActorInterface,
                          self._serializer)

    async def read(self, thread_id: str, path: str, owner: str) -> Payload:
        """Committed state from the actor host's lock-free read routes (see
        actors/committed.py), through service invocation of the actor host app."""
        joiner = "&" if "?" in path else "?"
        try:
            raw = await self._actors.invoke(
                self._actors_app_id,
                f"internal/threads/{thread_id}/{path}{joiner}owner={quote(owner, safe='')}")
        except (DaprInternalError, aiohttp.ClientError, TimeoutError) as exc:
            raise self._unavailable("read", thread_id, exc) from exc
        return self._answer(thread_id, json.loads(raw))

    async def publish_cancel(self, thread_id: str, run_id: str) -> None:
        """Tells every actor host to abort the run's step in flight (best effort: the
        cancel itself still lands at the next step boundary)."""
        message = CancelMessage(thread_id=thread_id, run_id=run_id)
        try:
            await self._actors.publish(self._pubsub, self._control_topic,
                                       message.model_dump_json().encode())
        except (DaprInternalError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("cancel of run %s not published: %s", run_id, type(exc).__name__)

    async def owner_call(self, owner: str, method: str, request: Payload) -> Payload:
        """A method of the caller's Owner actor (their thread list and rate limits)."""
        proxy = ActorProxy(self._actors, OWNER_ACTOR_TYPE, ActorId(owner_actor_id(owner)),
                           OwnerInterface, self._serializer)
        try:
            return await getattr(proxy, method)(request)
        except (DaprInternalError, aiohttp.ClientError, TimeoutError) as exc:
            raise self._unavailable(method, owner, exc) from exc

    async def call(self, thread_id: str, method: str, request: Payload | None = None) -> Payload:
        """Calls the actor method named `method` (as in ThreadActorInterface) on the thread.

        A missing thread or a failed call raises Problem.
        """
        bound = getattr(self._proxy(thread_id), method)
        try:
            result = await (bound() if request is None else bound(request))
        except (DaprInternalError, aiohttp.ClientError, TimeoutError) as exc:
            raise self._unavailable(method, thread_id, exc) from exc
        return self._answer(thread_id, result)

    @staticmethod
    def _unavailable(what: str, thread_id: str, exc: Exception) -> Problem:
        log.warning("%s on thread %s failed: %s", what, thread_id, type(exc).__name__)
        return Problem(503, "unavailable", "Thread service unavailable",
                       "the thread could not be reached; retry shortly")

    @staticmethod
    def _answer(thread_id: str, result: Payload) -> Payload:
        match result.get("status"):
            case "ok":
                return result
            case "not_found":
                raise thread_not_found(thread_id)
            case "run_not_found":
                raise run_not_found(thread_id, str(result.get("run_id", "")))
            case "invalid":
                raise Problem(422, "invalid-request", "Invalid request", result.get("detail", ""))
            case "busy":
                raise Problem(409, "thread-busy", "The thread has a run in progress",
                              "wait for it to end, or cancel it", run_id=result.get("run_id"))
            case "conflict":
                raise Problem(409, "run-not-waiting", "The run is not waiting",
                              result.get("detail", ""))
            case other:
                raise Problem(502, "unavailable", "Unexpected answer from the thread",
                              f"the thread answered with status {other!r}")
