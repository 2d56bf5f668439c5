"""Calls Thread actors through the local Dapr sidecar, in the contract's terms: a request
goes out, its method's answer comes back typed, and a refusal is raised as its problem."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from dapr.clients.exceptions import DaprInternalError
from pydantic import TypeAdapter, ValidationError

from actors.threads.cancellation import CancelMessage
from actors.threads.contract import (
    READER_ACTOR,
    EventsAnswer,
    ReadEvents,
    ReadRun,
    ReadThreadEvents,
    Refusal,
    Request,
    RunAnswer,
    Success,
    ThreadEventsAnswer,
)
from actors.threads.owner_contract import OWNER_ACTOR, Answer, OwnerRequest, owner_actor_id
from gateway.problems import Problem, Unavailable
from threadhost.common.sidecar import shared_actor_client

log = logging.getLogger(__name__)


class Unreachable(Unavailable):
    """The thread, or its committed state, could not be reached this time (a host going,
    a sidecar down): a 503 to a caller, a skipped poll to one who polls."""

    def unsure_of_turn(self, key: str) -> Unreachable:
        """The turn may have been taken before the thread became unreachable: the caller
        is told the key that makes sending it again take it at most once."""
        self.detail = (
            f"the turn may have been taken; send it again with the header "
            f"Idempotency-Key: {key} and it is taken at most once"
        )
        self.extra["idempotency_key"] = key
        self.headers["Idempotency-Key"] = key
        return self

    def made_but_not_listed(self, thread_id: str, key: str) -> Unreachable:
        """The thread was made, and could not be added to its owner's list this time:
        the caller is told the thread and the key that finishes it (made once)."""
        self.detail = (
            f"thread {thread_id} was made but is not in your thread list yet; "
            f"send the request again with the header Idempotency-Key: {key} and "
            f"it is finished, not made twice"
        )
        self.extra.update(idempotency_key=key, thread_id=thread_id)
        self.headers["Idempotency-Key"] = key
        return self


@dataclass
class Attempts:
    """How many times a call was sent (more than once: an earlier attempt may have been
    taken before the thread became unreachable)."""

    count: int = 0


class ThreadClient:
    def __init__(
        self,
        call_timeout_seconds: int,
        pubsub: str,
        control_topic: str,
        waiting_call_timeout_seconds: float | None = None,
        retry_seconds: float = 0.0,
        read_timeout_seconds: float | None = None,
    ) -> None:
        # How long a call that is safe to repeat is tried again while the thread cannot
        # be reached: its host died, and placement or the app health check is moving it.
        self._retry_seconds = retry_seconds
        self._pubsub, self._control_topic = pubsub, control_topic
        self._actors = shared_actor_client(call_timeout_seconds)
        # A call that waits takes a run's first steps: it may last one slow step.
        self._waiting_timeout = waiting_call_timeout_seconds or call_timeout_seconds
        self._read_timeout = read_timeout_seconds
        self._owner_timeout = retry_seconds or None

    async def call(
        self, thread_id: str, request: Request[Success], attempts: Attempts | None = None
    ) -> Success:
        """The thread's answer to `request`: its method's success; a refusal, or a
        thread that cannot be reached, raises Problem."""
        actor_type = request.actor
        limit: float | None
        if getattr(request, "wait", False):
            limit = self._waiting_timeout
        elif actor_type == READER_ACTOR:
            limit = self._read_timeout
        else:
            limit = None  # the client's own
        body = request.model_dump_json().encode()
        raw = await self._tried(
            request.method,
            thread_id,
            request.safe_to_repeat(),
            lambda: self._actors.invoke_method(
                actor_type, thread_id, request.method, body, limit_seconds=limit
            ),
            attempts or Attempts(),
        )
        return self._answer(request.method, request.answers, raw)

    async def _tried(
        self,
        what: str,
        thread_id: str,
        repeatable: bool,
        attempt: Callable[[], Awaitable[bytes]],
        attempts: Attempts,
    ) -> bytes:
        """`attempt`'s answer; one that is safe to repeat is tried again, backing off,
        for up to the retry time while the thread cannot be reached."""
        give_up = time.monotonic() + (self._retry_seconds if repeatable else 0.0)
        pause = 0.05
        while True:
            attempts.count += 1
            try:
                return await attempt()
            except (DaprInternalError, aiohttp.ClientError, TimeoutError) as exc:
                if time.monotonic() + pause > give_up:
                    raise self._unavailable(what, thread_id, exc) from exc
                log.info(
                    "%s on thread %s failed (%s): trying again", what, thread_id, type(exc).__name__
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    async def read_run(self, thread_id: str, run_id: str, owner: str) -> RunAnswer:
        """The run as committed, read past the thread's actor (its ThreadReader: it
        answers while a step holds the thread's lock, or the thread's host has died)."""
        return await self.call(thread_id, ReadRun(run_id=run_id, owner=owner))

    async def read_events(
        self, thread_id: str, run_id: str, owner: str, after: int
    ) -> EventsAnswer:
        return await self.call(thread_id, ReadEvents(run_id=run_id, after=after, owner=owner))

    async def read_thread_events(
        self, thread_id: str, owner: str, after: str | None
    ) -> ThreadEventsAnswer:
        return await self.call(thread_id, ReadThreadEvents(after=after, owner=owner))

    async def publish_cancel(self, thread_id: str, run_id: str) -> None:
        """Tells every actor host to abort the run's step in flight (best effort: the
        cancel itself still lands at the next step boundary)."""
        message = CancelMessage(thread_id=thread_id, run_id=run_id)
        try:
            await self._actors.publish(
                self._pubsub, self._control_topic, message.model_dump_json().encode()
            )
        except (DaprInternalError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("cancel of run %s not published: %s", run_id, type(exc).__name__)

    async def owner_call(self, owner: str, request: OwnerRequest[Answer]) -> Answer:
        """The answer of the caller's Owner actor (their thread list and rate limits): a
        request safe to repeat is tried again like a read while the actor moves. Each try
        has the failover window at most: a call that reached a host as it left the
        placement may otherwise wait for as long as that host's sidecar lives."""
        body = request.model_dump_json().encode()
        raw = await self._tried(
            request.method,
            owner,
            request.safe_to_repeat(),
            lambda: self._actors.invoke_method(
                OWNER_ACTOR,
                owner_actor_id(owner),
                request.method,
                body,
                limit_seconds=self._owner_timeout,
            ),
            Attempts(),
        )
        try:
            return request.read_answer(raw)
        except ValidationError as exc:
            raise self._outside_contract(request.method, exc) from exc

    @staticmethod
    def _unavailable(what: str, thread_id: str, exc: Exception) -> Unreachable:
        log.warning("%s on thread %s failed: %s", what, thread_id, type(exc).__name__)
        return Unreachable("the thread could not be reached; retry shortly")

    @staticmethod
    def _outside_contract(method: str, exc: ValidationError) -> Problem:
        log.error("%s answered outside the contract: %s", method, exc.errors()[0]["msg"])
        return Unavailable(
            f"{method} answered outside the contract",
            title="Unexpected answer from the thread",
            status=502,
        )

    @staticmethod
    def _answer(method: str, answers: TypeAdapter[Any], raw: bytes) -> Any:
        try:
            answer = answers.validate_json(raw)
        except ValidationError as exc:
            raise ThreadClient._outside_contract(method, exc) from exc
        if isinstance(answer, Refusal):
            raise Problem(
                answer.http_status,
                answer.problem_type,
                answer.title,
                answer.detail,
                **answer.extensions(),
            )
        return answer
