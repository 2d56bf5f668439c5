"""Routes for threads, their messages and their runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from actors.threads.contract import (
    CancelRun,
    CreateThread,
    DeleteThread,
    DescribeThread,
    ListRuns,
    ReadHistory,
    RunView,
    ThreadView,
)
from actors.threads.owner_contract import ListEndUsers, ListThreads, RemoveThread, ThreadStatus
from gateway.auth import Caller
from gateway.deps import (
    CallerDep,
    ClientDep,
    Door,
    DoorDep,
    IdempotencyKey,
    RunId,
    SettingsDep,
    ThreadId,
    ThreadRefDep,
    admitted,
)
from gateway.problems import Forbidden, InvalidRequest, Problem, problem_responses
from gateway.run_stream import SSE_HEADERS, Listener, stream_run
from gateway.schemas import (
    AcceptedView,
    EndUsersView,
    EventsView,
    HistoryView,
    MessageView,
    PostMessage,
    ResumeRun,
    RunsView,
    ThreadListView,
    TurnView,
)
from gateway.schemas import CreateThread as CreateThreadBody
from gateway.turn import Turn, TurnPlan, open_keyed_thread, open_thread, take_turn
from threadhost.common.owners import is_service

# Every route may refuse the caller, limit them, fail or find the service unreachable.
ANY_ROUTE = problem_responses(401, 403, 422, 429, 500, 503)
router = APIRouter(
    prefix="/v1/threads", tags=["threads"], dependencies=[Depends(admitted)], responses=ANY_ROUTE
)
# A service's end users.
end_users = APIRouter(
    prefix="/v1", tags=["threads"], dependencies=[Depends(admitted)], responses=ANY_ROUTE
)
# The routes that take a turn: admitted by the turn, with the run it starts.
turns = APIRouter(prefix="/v1/threads", tags=["threads"], responses=ANY_ROUTE)
# A route with a thread in its path answers 404 for others' threads; one with a body may
# find it unreadable or too large.
ON_THREAD = problem_responses(404)
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "the run goes on: its URL is in Location", "model": AcceptedView}
}
WITH_BODY = problem_responses(400, 413)
RUN_STARTS = {**ON_THREAD, **WITH_BODY, **problem_responses(409)}
# A turn answers its run (wait), its events (stream) or 202 with the run's URL.
TURN_ANSWERS = {**RUN_STARTS, **ACCEPTED, 200: {"content": {"text/event-stream": {}}}}


@router.post(
    "",
    status_code=201,
    response_model=ThreadView,
    responses={**WITH_BODY, 200: {"description": "the caller's thread of this `key`, made before"}},
)
async def create_thread(
    response: Response,
    client: ClientDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
    body: Annotated[CreateThreadBody | None, Body()] = None,
) -> ThreadView:
    """A new thread, in the caller's list. With an `Idempotency-Key`, a retry answers
    the thread the first attempt made. With a `key`, the caller's thread of that key:
    made by the first call (201), found by every later one (200), one thread however
    many replicas are asked at once."""
    body = body or CreateThreadBody()
    create = CreateThread(
        metadata=body.metadata,
        agent=body.agent,
        on_active=body.on_active,
        webhook_url=body.webhook_url,
        key=body.key,
        owner=caller.owner,
    )
    if body.key is None:
        return await open_thread(client, caller, idempotency_key, create)
    opened = await open_keyed_thread(client, caller, create)
    response.status_code = 201 if opened.created else 200
    return opened.thread


@router.get("", response_model=ThreadListView, responses=problem_responses(422))
async def list_threads(
    client: ClientDep,
    caller: CallerDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    status: Annotated[
        ThreadStatus | None,
        Query(description="only threads with a run running, waiting for its caller, or none"),
    ] = None,
    metadata: Annotated[
        list[str],
        Query(
            description="only threads with this metadata pair, `key=value` (repeat for more)",
            examples=["user=u-42"],
            max_length=16,
        ),
    ] = [],  # noqa: B006 - FastAPI copies a query default
) -> ThreadListView:
    """The caller's threads, newest first (by status: most recently changed first), from
    their owner's lists: no thread is activated, and a page costs the same however many
    threads the caller has."""
    pairs: dict[str, str] = {}
    for pair in metadata:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise InvalidRequest(f"metadata: {pair!r} is not key=value", title="Invalid filter")
        pairs[key] = value
    found = await client.owner_call(
        caller.owner, ListThreads(offset=offset, limit=limit, status=status, metadata=pairs)
    )
    threads = [summary.model_dump() for summary in found.threads]
    return ThreadListView.model_validate(
        {"threads": threads, "next_offset": offset + limit if len(threads) == limit else None}
    )


@end_users.get("/end-users", response_model=EndUsersView)
async def list_end_users(
    client: ClientDep,
    caller: CallerDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EndUsersView:
    """A service's end users with threads, newest first: list each one's threads with
    `threadhost-end-user` (a service's only: 403 for anyone else)."""
    if not is_service(caller.owner):
        raise Forbidden("only a service has end users (named with threadhost-end-user)")
    found = await client.owner_call(caller.owner, ListEndUsers(offset=offset, limit=limit))
    return EndUsersView(
        end_users=found.end_users,
        next_offset=offset + limit if len(found.end_users) == limit else None,
    )


@router.get("/{thread_id}", response_model=ThreadView, responses=ON_THREAD)
async def get_thread(thread_id: ThreadId, client: ClientDep, caller: CallerDep) -> ThreadView:
    return (await client.call(thread_id, DescribeThread(owner=caller.owner))).thread


@router.delete("/{thread_id}", status_code=204, responses=ON_THREAD)
async def delete_thread(thread_id: ThreadId, client: ClientDep, caller: CallerDep) -> Response:
    """Erases the thread: every piece of its state (history, runs, events), its reminders,
    and its entry in the caller's thread list."""
    try:
        # The thread takes itself off its owner's list.
        await client.call(thread_id, DeleteThread(owner=caller.owner))
    except Problem as problem:
        if problem.status == 404:  # gone already (its retention ran out): the list forgets it
            await client.owner_call(caller.owner, RemoveThread(thread_id=thread_id))
        raise
    return Response(status_code=204)


@router.get("/{thread_id}/runs", response_model=RunsView, responses=ON_THREAD)
async def list_runs(
    thread_id: ThreadId,
    client: ClientDep,
    caller: CallerDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> RunsView:
    """The thread's runs, newest first."""
    answer = await client.call(thread_id, ListRuns(offset=offset, limit=limit, owner=caller.owner))
    return RunsView(runs=answer.runs, total=answer.total)


@turns.post(
    "/{thread_id}/messages",
    response_model=TurnView,
    responses=TURN_ANSWERS,
)
async def post_message(
    thread: ThreadRefDep,
    body: PostMessage,
    door: DoorDep,
    idempotency_key: IdempotencyKey = None,
) -> Response | TurnView:
    """Starts a run with the message; by `mode`, waits for it to end, streams its events,
    or answers 202 at once. A message to `key:<key>` opens the caller's thread of that
    key first if there is none (with the default agent)."""
    plan = TurnPlan(
        thread_id=thread.id,
        thread_key=thread.key,
        text=body.content,
        recipe=body.model,
        on_active=body.on_active,
        client_tools=body.client_tools,
        disabled_tools=body.disabled_tools,
        output_schema=body.output_schema,
        mode=body.mode,
        idempotency_key=idempotency_key,
    )
    return _answer(door, plan.mode, await take_turn(door, plan))


@turns.post(
    "/{thread_id}/runs/{run_id}/resume",
    response_model=TurnView,
    responses=TURN_ANSWERS,
)
async def resume_run(
    thread_id: ThreadId,
    run_id: RunId,
    body: ResumeRun,
    door: DoorDep,
    idempotency_key: IdempotencyKey = None,
) -> Response | TurnView:
    """Answers what a waiting run (`requires_action`) waits for: the results of client
    tool calls, approvals or denials, answers to questions. Every pending call must be
    answered exactly once; otherwise nothing changes (422). By `mode`, as for a message."""
    plan = TurnPlan(
        thread_id=thread_id,
        run_id=run_id,
        actions=body.actions,
        mode=body.mode,
        idempotency_key=idempotency_key,
    )
    return _answer(door, plan.mode, await take_turn(door, plan))


def _answer(door: Door, mode: str, turn: Turn) -> Response | TurnView:
    """The turn's answer by `mode`: its events as they come (those from the call on), 202
    at once, or the run as it stopped with its messages (202 if it still runs)."""
    answer, thread_id = turn.answer, turn.thread_id
    if mode == "stream":
        assert door.request is not None  # every HTTP door has its request
        return _event_stream(
            door.request,
            door.caller,
            thread_id,
            answer.run.run_id,
            answer.first_seq - 1,
            turn.listener,
        )
    if mode == "background" or answer.messages is None:
        return _accepted(thread_id, answer.run)
    messages = [
        MessageView.of(answer.run.first_message + i, m) for i, m in enumerate(answer.messages)
    ]
    reply = next((m.content for m in reversed(messages) if m.kind == "assistant_text"), None)
    return TurnView(
        thread_id=thread_id,
        run=answer.run,
        reply=reply,
        messages=messages,
        message_count=answer.message_count or 0,
    )


def _accepted(thread_id: str, run: RunView) -> JSONResponse:
    url = f"/v1/threads/{thread_id}/runs/{run.run_id}"
    return JSONResponse(
        AcceptedView(run=run, url=url).model_dump(mode="json"),
        status_code=202,
        headers={"Location": url},
    )


def _event_stream(
    request: Request,
    caller: Caller,
    thread_id: str,
    run_id: str,
    after: int,
    listener: Listener | None = None,
) -> Response:
    app = request.app
    # A listener opened before the run started has everything coming: no replay needed.
    replay = listener is None
    listener = listener or app.state.run_events.listen(run_id, caller.owner)

    async def events() -> AsyncIterator[str]:
        try:
            async for chunk in stream_run(
                app.state.thread_client,
                listener.queue,
                caller.owner,
                thread_id,
                run_id,
                after,
                app.state.settings.sse_heartbeat_seconds,
                replay,
            ):
                yield chunk
        finally:
            listener.close()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={**SSE_HEADERS, "Location": f"/v1/threads/{thread_id}/runs/{run_id}"},
    )


@router.get("/{thread_id}/runs/{run_id}", response_model=RunView, responses=ON_THREAD)
async def get_run(
    thread_id: ThreadId, run_id: RunId, client: ClientDep, caller: CallerDep
) -> RunView:
    return (await client.read_run(thread_id, run_id, caller.owner)).run


@router.post(
    "/{thread_id}/runs/{run_id}/cancel",
    response_model=RunView,
    responses={**ON_THREAD, **WITH_BODY},
)
async def cancel_run(
    thread_id: ThreadId, run_id: RunId, client: ClientDep, caller: CallerDep
) -> RunView:
    """Cancels the run: a model call in flight is aborted, a queued run ends at once."""
    await client.read_run(thread_id, run_id, caller.owner)  # 404 for others' runs
    await client.publish_cancel(thread_id, run_id)
    return (await client.call(thread_id, CancelRun(run_id=run_id, owner=caller.owner))).run


@router.get(
    "/{thread_id}/runs/{run_id}/events",
    response_model=EventsView,
    responses={**ON_THREAD, 200: {"content": {"text/event-stream": {}}}},
)
async def read_events(
    thread_id: ThreadId,
    run_id: RunId,
    client: ClientDep,
    request: Request,
    caller: CallerDep,
    after: Annotated[int, Query(ge=-1)] = -1,
    last_event_id: Annotated[int | None, Header(ge=-1)] = None,
) -> Response:
    """The run's events after `after` (or Last-Event-ID): JSON, or with
    `Accept: text/event-stream` the same as a live stream that ends with the run."""
    after = last_event_id if last_event_id is not None else after
    if "text/event-stream" in request.headers.get("accept", ""):
        await client.read_run(thread_id, run_id, caller.owner)  # 404 before streaming
        return _event_stream(request, caller, thread_id, run_id, after)
    answer = await client.read_events(thread_id, run_id, caller.owner, after)
    return JSONResponse(
        EventsView(
            run=answer.run, events=[event.model_dump(mode="json") for event in answer.events]
        ).model_dump(mode="json")
    )


@router.get("/{thread_id}/messages", response_model=HistoryView, responses=ON_THREAD)
async def read_history(
    thread_id: ThreadId,
    client: ClientDep,
    settings: SettingsDep,
    caller: CallerDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> HistoryView:
    limit = min(limit or settings.max_history_limit, settings.max_history_limit)
    answer = await client.call(
        thread_id, ReadHistory(offset=offset, limit=limit, owner=caller.owner)
    )
    messages = [MessageView.of(offset + i, m) for i, m in enumerate(answer.messages)]
    count = answer.thread.message_count
    end = offset + len(messages)
    return HistoryView(
        thread_id=thread_id,
        messages=messages,
        message_count=count,
        next_offset=end if end < count else None,
    )
