"""The A2A door's requests, answered by threadhost's turns: the official `a2a-sdk` reads
and writes the protocol (JSON-RPC 1.0), this handler maps each method onto threads and
runs. A context is a thread, a task a run (`<thread>.<run>`); a message without a task
starts a run (on its context's thread, or a new thread of the door's agent); a message to
a task that needs input answers what its run waits for. Imported at the door's first
request (gateway/a2a_door.py): the SDK takes a second to import.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.server.routes.common import DefaultServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.types import a2a_pb2 as a2a
from a2a.utils.errors import (
    ExtendedAgentCardNotConfiguredError,
    InternalError,
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from starlette.requests import Request
from starlette.responses import Response

from actors.engine.run import TERMINAL
from actors.threads.contract import CancelRun, ConfigurePush, GetRun, ListRuns, RunView
from gateway.a2a_tasks import (
    answers_of,
    status_update,
    task_of,
    text_of,
    text_update,
)
from gateway.deps import Door
from gateway.problems import Problem
from gateway.run_stream import parsed_frame, stream_run
from gateway.turn import TurnPlan, take_turn
from threadhost.common.a2a_tasks import parse_task_id, task_id

# The longest idempotency key a turn takes: longer message ids are not keys.
MAX_KEY = 200


@dataclass
class A2ACall:
    """Who calls through the door, and which agent's door it is."""

    door: Door
    agent: str


class _FromRequest(DefaultServerCallContextBuilder):
    """The SDK's context (the request's headers: the protocol version, extensions) with
    threadhost's caller and door."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state["threadhost"] = request.state.a2a_call
        return context


def dispatcher() -> JsonRpcDispatcher:
    return JsonRpcDispatcher(ThreadhostHandler(), context_builder=_FromRequest())


async def answer(dispatch: JsonRpcDispatcher, request: Request, call: A2ACall) -> Response:
    request.state.a2a_call = call
    return await dispatch.handle_requests(request)


def _call(context: ServerCallContext) -> A2ACall:
    return context.state["threadhost"]


@contextmanager
def _as_a2a() -> Iterator[None]:
    """threadhost's refusals as the protocol's errors."""
    try:
        yield
    except Problem as problem:
        detail = problem.detail or problem.title
        if problem.status == 404:
            raise TaskNotFoundError(message=detail) from None
        if problem.status in (400, 409, 413, 422):
            raise InvalidParamsError(message=detail) from None
        raise InternalError(message=f"{problem.title}: {detail}") from None


def _ids(value: str) -> tuple[str, str]:
    ids = parse_task_id(value)
    if ids is None:
        raise TaskNotFoundError(message=f"no task {value!r}")
    return ids


class ThreadhostHandler(RequestHandler):
    # --- messages ---------------------------------------------------------------------

    async def on_message_send(
        self, params: a2a.SendMessageRequest, context: ServerCallContext
    ) -> a2a.Task:
        call = _call(context)
        background = params.configuration.return_immediately
        with _as_a2a():
            taken = await take_turn(
                call.door, await _plan(call, params.message, "background" if background else "wait")
            )
            run = taken.answer.run
            await _push_asked(call, run, params)
        limit = (
            params.configuration.history_length
            if params.configuration.HasField("history_length")
            else None
        )
        return task_of(run, taken.answer.messages, limit)

    async def on_message_send_stream(
        self, params: a2a.SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        call = _call(context)
        with _as_a2a():
            taken = await take_turn(call.door, await _plan(call, params.message, "stream"))
            await _push_asked(call, taken.answer.run, params)
        listener = taken.listener
        assert listener is not None
        try:
            yield task_of(taken.answer.run)
            async for event in _updates(
                call, listener.queue, taken.answer.run, taken.answer.first_seq - 1, replay=False
            ):
                yield event
        finally:
            listener.close()

    async def on_subscribe_to_task(
        self, params: a2a.SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any]:
        call = _call(context)
        thread_id, run_id = _ids(params.id)
        with _as_a2a():
            run = (await call.door.client.read_run(thread_id, run_id, call.door.caller.owner)).run
        if run.status in TERMINAL:
            raise UnsupportedOperationError(message=f"task {params.id} has ended ({run.status})")
        assert call.door.request is not None
        listener = call.door.request.app.state.run_events.listen(run_id, call.door.caller.owner)
        try:
            yield task_of(run)
            async for event in _updates(call, listener.queue, run, run.next_seq - 1, replay=True):
                yield event
        finally:
            listener.close()

    # --- tasks ------------------------------------------------------------------------

    async def on_get_task(self, params: a2a.GetTaskRequest, context: ServerCallContext) -> a2a.Task:
        call = _call(context)
        thread_id, run_id = _ids(params.id)
        with _as_a2a():
            answer = await call.door.client.call(
                thread_id,
                GetRun(run_id=run_id, with_messages=True, owner=call.door.caller.owner),
            )
        limit = params.history_length if params.HasField("history_length") else None
        return task_of(answer.run, answer.messages, limit)

    async def on_list_tasks(
        self, params: a2a.ListTasksRequest, context: ServerCallContext
    ) -> a2a.ListTasksResponse:
        call = _call(context)
        if not params.context_id:
            raise InvalidParamsError(message="context_id: tasks are listed by their context")
        offset = int(params.page_token) if params.page_token.isdigit() else 0
        size = min(params.page_size or 20, 100)
        with _as_a2a():
            answer = await call.door.client.call(
                params.context_id,
                ListRuns(offset=offset, limit=size, owner=call.door.caller.owner),
            )
        after = offset + len(answer.runs)
        return a2a.ListTasksResponse(
            tasks=[task_of(run) for run in answer.runs],
            next_page_token=str(after) if after < answer.total else "",
            page_size=size,
            total_size=answer.total,
        )

    async def on_cancel_task(
        self, params: a2a.CancelTaskRequest, context: ServerCallContext
    ) -> a2a.Task:
        call = _call(context)
        thread_id, run_id = _ids(params.id)
        client, owner = call.door.client, call.door.caller.owner
        with _as_a2a():
            run = (await client.read_run(thread_id, run_id, owner)).run
            if run.status in TERMINAL:
                raise TaskNotCancelableError(message=f"task {params.id} has ended ({run.status})")
            await client.publish_cancel(thread_id, run_id)
            answer = await client.call(thread_id, CancelRun(run_id=run_id, owner=owner))
        return task_of(answer.run)

    # --- push notifications -------------------------------------------------------------

    async def on_create_task_push_notification_config(
        self, params: a2a.TaskPushNotificationConfig, context: ServerCallContext
    ) -> a2a.TaskPushNotificationConfig:
        thread_id, run_id = _ids(params.task_id)
        with _as_a2a():
            config_id = await _set_push(_call(context), thread_id, run_id, params)
        found = a2a.TaskPushNotificationConfig()
        found.CopyFrom(params)
        found.id = config_id
        return found

    async def on_get_task_push_notification_config(
        self, params: a2a.GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> a2a.TaskPushNotificationConfig:
        configs = await self._configs(_call(context), params.task_id)
        found = next((c for c in configs if c.id == params.id), None)
        if found is None:
            raise TaskNotFoundError(message=f"no push notification config {params.id!r}")
        return found

    async def on_list_task_push_notification_configs(
        self, params: a2a.ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> a2a.ListTaskPushNotificationConfigsResponse:
        configs = await self._configs(_call(context), params.task_id)
        return a2a.ListTaskPushNotificationConfigsResponse(configs=configs)

    async def on_delete_task_push_notification_config(
        self, params: a2a.DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        call = _call(context)
        thread_id, run_id = _ids(params.task_id)
        with _as_a2a():
            await call.door.client.call(
                thread_id,
                ConfigurePush(
                    run_id=run_id, config_id=params.id, remove=True, owner=call.door.caller.owner
                ),
            )

    async def _configs(self, call: A2ACall, task: str) -> list[a2a.TaskPushNotificationConfig]:
        """A task's push targets (their tokens are the client's own: not given back)."""
        thread_id, run_id = _ids(task)
        with _as_a2a():
            run = (await call.door.client.read_run(thread_id, run_id, call.door.caller.owner)).run
        return [
            a2a.TaskPushNotificationConfig(id=target["id"], task_id=task, url=target["url"])
            for target in run.push
        ]

    async def on_get_extended_agent_card(
        self, params: a2a.GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> a2a.AgentCard:
        raise ExtendedAgentCardNotConfiguredError(message="the public card is the whole card")


async def _plan(call: A2ACall, message: a2a.Message, mode: str) -> TurnPlan:
    """The turn a message asks for: answers to a task that needs input, or a new run on
    its context's thread (a new thread of the agent without one). Its message id is the
    turn's idempotency key, so a client's retry finds the run its first attempt started."""
    key = message.message_id if 0 < len(message.message_id) <= MAX_KEY else None
    if message.task_id:
        thread_id, run_id = _ids(message.task_id)
        if message.context_id and message.context_id != thread_id:
            raise InvalidParamsError(message="context_id is not the task's context")
        run = (await call.door.client.read_run(thread_id, run_id, call.door.caller.owner)).run
        if run.status != "requires_action":
            raise UnsupportedOperationError(
                message=f"task {message.task_id} is {run.status}: only a task that needs "
                "input takes a message; send one without task_id for a new task"
            )
        return TurnPlan(
            thread_id=thread_id,
            run_id=run_id,
            actions=answers_of(message, run),
            door="a2a",
            mode=mode,  # type: ignore[arg-type]
            idempotency_key=key,
        )
    return TurnPlan(
        thread_id=message.context_id or None,
        agent=call.agent,
        text=text_of(message),
        text_field="message.parts",
        door="a2a",
        mode=mode,  # type: ignore[arg-type]
        idempotency_key=key,
    )


async def _push_asked(call: A2ACall, run: RunView, params: a2a.SendMessageRequest) -> None:
    """A push notification target the message's configuration asks for, on its task."""
    if not params.configuration.HasField("task_push_notification_config"):
        return
    await _set_push(
        call, run.thread_id, run.run_id, params.configuration.task_push_notification_config
    )


async def _set_push(
    call: A2ACall, thread_id: str, run_id: str, config: a2a.TaskPushNotificationConfig
) -> str:
    """Sets a push notification target on the run; returns its id ("push" if none)."""
    config_id = config.id or "push"
    await call.door.client.call(
        thread_id,
        ConfigurePush(
            run_id=run_id,
            config_id=config_id,
            url=config.url,
            token=config.token or None,
            owner=call.door.caller.owner,
        ),
    )
    return config_id


async def _updates(
    call: A2ACall, live: Any, run: RunView, after: int, replay: bool
) -> AsyncIterator[Any]:
    """The run's events as the task's updates: its answer's text as it comes, each change
    of state, and once it completed, its whole answer (with a typed run's output)."""
    client, owner = call.door.client, call.door.caller.owner
    heartbeat = call.door.settings.sse_heartbeat_seconds
    first = True
    async for frame in stream_run(
        client, live, owner, run.thread_id, run.run_id, after, heartbeat, replay
    ):
        event, data = parsed_frame(frame)
        if event == "token.delta":
            yield text_update(run, data["text"], first)
            first = False
        elif event == "run.status":
            now = (await client.read_run(run.thread_id, run.run_id, owner)).run
            if now.status == "completed":
                done = await client.call(
                    run.thread_id, GetRun(run_id=run.run_id, with_messages=True, owner=owner)
                )
                for artifact in task_of(done.run, done.messages).artifacts:
                    yield a2a.TaskArtifactUpdateEvent(
                        task_id=task_id(run.thread_id, run.run_id),
                        context_id=run.thread_id,
                        artifact=artifact,
                        append=False,
                        last_chunk=True,
                    )
            yield status_update(now)
