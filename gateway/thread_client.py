"""Calls Thread actors through the local Dapr sidecar, in the contract's terms: a request
goes out, its method's answer comes back typed, and a refusal is raised as its problem."""

from __future__ import annotations

import logging
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from dapr.actor import ActorId, ActorProxy
from dapr.clients.exceptions import DaprInternalError
from pydantic import BaseModel, TypeAdapter, ValidationError

from actors.cancellation import CancelMessage
from actors.contract import (
    EventsAnswer,
    NotFound,
    Refusal,
    Request,
    RunAnswer,
    RunNotFound,
    answers_of,
)
from actors.interface import ACTOR_TYPE, Payload
from actors.owner_actor import OWNER_ACTOR_TYPE, OwnerInterface, owner_actor_id
from gateway.problems import Problem
from threadhost.actor_client import shared_actor_client
from threadhost.state_serializer import PlainJSONSerializer

log = logging.getLogger(__name__)
Success = TypeVar("Success", bound=BaseModel)
_RUN_READ = answers_of(RunAnswer, NotFound, RunNotFound)
_EVENTS_READ = answers_of(EventsAnswer, NotFound, RunNotFound)


class Unreachable(Problem):
    """The thread, or its committed state, could not be reached this time (a host going,
    a sidecar down): a 503 to a caller, a skipped poll to one who polls."""


class ThreadClient:
    def __init__(self, call_timeout_seconds: int, actors_app_id: str, pubsub: str,
                 control_topic: str, waiting_call_timeout_seconds: float | None = None) -> None:
        self._actors_app_id = actors_app_id
        self._pubsub, self._control_topic = pubsub, control_topic
        self._actors = shared_actor_client(call_timeout_seconds)
        # A call that waits takes a run's first steps: it may last one slow step.
        self._waiting_timeout = waiting_call_timeout_seconds or call_timeout_seconds
        # Plain JSON: the SDK's default decoder turns date-like strings into datetimes.
        self._serializer = PlainJSONSerializer()

    async def call(self, thread_id: str, request: Request) -> Any:
        """The thread's answer to `request`: its method's success; a refusal, or a
        thread that cannot be reached, raises Problem."""
        waits = bool(getattr(request, "wait", False))
        try:
            raw = await self._actors.invoke_method(
                ACTOR_TYPE, thread_id, request.method, request.model_dump_json().encode(),
                limit_seconds=self._waiting_timeout if waits else None)
        except (DaprInternalError, aiohttp.ClientError, TimeoutError) as exc:
            raise self._unavailable(request.method, thread_id, exc) from exc
        return self._answer(request.method, request.answers, raw)

    async def read_run(self, thread_id: str, run_id: str, owner: str) -> RunAnswer:
        """The run as committed, from the actor host's lock-free read route (see
        actors/committed.py), through service invocation of the actor host app."""
        return await self._read(thread_id, f"runs/{run_id}", owner, _RUN_READ)

    async def read_events(self, thread_id: str, run_id: str, owner: str,
                          after: int) -> EventsAnswer:
        return await self._read(thread_id, f"runs/{run_id}/events?after={after}", owner,
                                _EVENTS_READ)

    async def _read(self, thread_id: str, path: str, owner: str,
                    answers: TypeAdapter[Any]) -> Any:
        joiner = "&" if "?" in path else "?"
        try:
            raw = await self._actors.invoke(
                self._actors_app_id,
                f"internal/threads/{thread_id}/{path}{joiner}owner={quote(owner, safe='')}")
        except (DaprInternalError, aiohttp.ClientError, TimeoutError) as exc:
            raise self._unavailable("read", thread_id, exc) from exc
        return self._answer("read", answers, raw)

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

    @staticmethod
    def _unavailable(what: str, thread_id: str, exc: Exception) -> Unreachable:
        log.warning("%s on thread %s failed: %s", what, thread_id, type(exc).__name__)
        return Unreachable(503, "unavailable", "Thread service unavailable",
                           "the thread could not be reached; retry shortly")

    @staticmethod
    def _answer(method: str, answers: TypeAdapter[Any], raw: bytes) -> Any:
        try:
            answer = answers.validate_json(raw)
        except ValidationError as exc:
            log.error("%s answered outside the contract: %s", method, exc.errors()[0]["msg"])
            raise Problem(502, "unavailable", "Unexpected answer from the thread",
                          f"{method} answered outside the contract") from exc
        if isinstance(answer, Refusal):
            raise Problem(answer.http_status, answer.problem_type, answer.title, answer.detail,
                          **answer.extensions())
        return answer
