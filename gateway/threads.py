"""Routes for threads, their messages and their runs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from gateway.auth import Caller
from gateway.problems import Problem, problem_responses
from gateway.run_stream import SSE_HEADERS, Listener, stream_run
from gateway.schemas import (
    THREAD_ID_PATTERN,
    AcceptedView,
    CreateThread,
    EventsView,
    HistoryView,
    MessageView,
    PostMessage,
    ResumeRun,
    RunsView,
    RunView,
    ThreadListView,
    ThreadView,
    TurnView,
)
from gateway.thread_client import ThreadClient
from threadhost.ids import new_thread_id
from threadhost.run_signals import forget, wait_for_change
from threadhost.settings import Settings

# Every route may refuse the caller, limit them, fail or find the service unreachable.
router = APIRouter(prefix="/v1/threads", tags=["threads"],  # admission added below
                   responses=problem_responses(401, 403, 422, 429, 500, 503))
WAITING = {"queued", "running"}
# A route with a thread in its path answers 404 for others' threads; one with a body may
# find it unreadable or too large.
ON_THREAD = problem_responses(404)
ACCEPTED = {202: {"description": "the run goes on: its URL is in Location",
                  "model": AcceptedView}}
WITH_BODY = problem_responses(400, 413)
RUN_STARTS = {**ON_THREAD, **WITH_BODY, **problem_responses(409)}


# Async, so FastAPI calls them on the event loop rather than in a worker thread.
async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _client(request: Request) -> ThreadClient:
    return request.app.state.thread_client


async def _caller(request: Request) -> Caller:
    return await request.app.state.authenticator.caller(request)


SettingsDep = Annotated[Settings, Depends(_settings)]
ClientDep = Annotated[ThreadClient, Depends(_client)]
CallerDep = Annotated[Caller, Depends(_caller)]


async def _admitted(request: Request, caller: CallerDep, settings: SettingsDep,
                    client: ClientDep) -> None:
    """The caller's rate limits, kept by their Owner actor, so they hold across replicas."""
    if not (settings.rate_limit_per_minute or settings.max_concurrent_runs):
        return
    # A run starts with a message, and starts again when a waiting run is resumed.
    starts_run = request.method == "POST" and request.url.path.endswith(("/messages",
                                                                         "/resume"))
    answer = await client.owner_call(caller.owner, "Admit", {
        "per_minute": settings.rate_limit_per_minute, "run": starts_run,
        "max_runs": settings.max_concurrent_runs})
    if not answer["allowed"]:
        problem = Problem(429, "rate-limited", "Too many requests",
                          "too many runs going on" if starts_run and settings.max_concurrent_runs
                          else "too many requests this minute",
                          retry_after=answer["retry_after"])
        problem.headers = {"Retry-After": str(answer["retry_after"])}
        raise problem


router.dependencies.append(Depends(_admitted))
ThreadId = Annotated[str, Path(pattern=THREAD_ID_PATTERN)]
RunId = Annotated[str, Path(pattern=THREAD_ID_PATTERN)]


@router.post("", status_code=201, response_model=ThreadView, responses=WITH_BODY)
async def create_thread(client: ClientDep, caller: CallerDep,
                        body: Annotated[CreateThread | None, Body()] = None) -> ThreadView:
    body = body or CreateThread()
    result = await client.call(new_thread_id(), "Create", {"metadata": body.metadata,
                                                           "agent": body.agent,
                                                           "owner": caller.owner})
    thread = ThreadView.of(result["thread"])
    await client.owner_call(caller.owner, "AddThread", {
        "id": thread.id, "agent": thread.agent, "created_at": thread.created_at.isoformat(),
        "metadata": thread.metadata})
    return thread


@router.get("", response_model=ThreadListView)
async def list_threads(client: ClientDep, caller: CallerDep,
                       offset: Annotated[int, Query(ge=0)] = 0,
                       limit: Annotated[int, Query(ge=1, le=100)] = 20) -> ThreadListView:
    """The caller's threads, newest first, from their index: no thread is activated."""
    result = await client.owner_call(caller.owner, "ListThreads",
                                     {"offset": offset, "limit": limit})
    return ThreadListView(threads=result["threads"],
                          next_offset=offset + limit if len(result["threads"]) == limit
                          else None)


@router.get("/{thread_id}", response_model=ThreadView, responses=ON_THREAD)
async def get_thread(thread_id: ThreadId, client: ClientDep, caller: CallerDep) -> ThreadView:
    result = await client.call(thread_id, "Describe", {"owner": caller.owner})
    return ThreadView.of(result["thread"])


@router.delete("/{thread_id}", status_code=204, responses=ON_THREAD)
async def delete_thread(thread_id: ThreadId, client: ClientDep, caller: CallerDep) -> Response:
    """Erases the thread: every piece of its state (history, runs, events), its reminders,
    and its entry in the caller's thread list."""
    try:
        await client.call(thread_id, "Delete", {"owner": caller.owner})
    except Problem as problem:
        if problem.status == 404:  # gone already (its retention ran out): the list forgets it
            await client.owner_call(caller.owner, "RemoveThread", {"thread_id": thread_id})
        raise
    await client.owner_call(caller.owner, "RemoveThread", {"thread_id": thread_id})
    return Response(status_code=204)


@router.get("/{thread_id}/runs", response_model=RunsView, responses=ON_THREAD)
async def list_runs(thread_id: ThreadId, client: ClientDep, caller: CallerDep,
                    offset: Annotated[int, Query(ge=0)] = 0,
                    limit: Annotated[int, Query(ge=1, le=100)] = 20) -> RunsView:
    """The thread's runs, newest first."""
    result = await client.call(thread_id, "ListRuns", {"offset": offset, "limit": limit,
                                                       "owner": caller.owner})
    return RunsView(runs=[RunView(**r) for r in result["runs"]], total=result["total"])


@router.post("/{thread_id}/messages", response_model=TurnView,
             responses={**RUN_STARTS, **ACCEPTED, 200: {"content": {"text/event-stream": {}}}})
async def post_message(thread_id: ThreadId, body: PostMessage, client: ClientDep,
                       settings: SettingsDep, caller: CallerDep, request: Request,
                       idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
                       ) -> Response:
    """Starts a run with the message; by `mode`, waits for it to end, streams its events,
    or answers 202 at once."""
    if not body.content.strip():
        raise Problem(422, "invalid-request", "Empty message", "content must not be blank")
    if len(body.content) > settings.max_message_chars:
        raise Problem(422, "invalid-request", "Message too long",
                      f"content is {len(body.content)} characters; "
                      f"the limit is {settings.max_message_chars}")
    turn = {"text": body.content, "model": body.model, "owner": caller.owner,
            "on_active": body.on_active, "idempotency_key": idempotency_key,
            "client_tools": [tool.model_dump(mode="json") for tool in body.client_tools],
            "disabled_tools": body.disabled_tools}
    # Listening on the thread: the run's id is not known before it starts.
    return await _in_mode(request, caller, body.mode, thread_id, thread_id, lambda: _in_slot(
        client, caller, settings, lambda: client.call(thread_id, "PostMessage", turn)))


@router.post("/{thread_id}/runs/{run_id}/resume", response_model=TurnView,
             responses={**RUN_STARTS, **ACCEPTED, 200: {"content": {"text/event-stream": {}}}})
async def resume_run(thread_id: ThreadId, run_id: RunId, body: ResumeRun, client: ClientDep,
                     settings: SettingsDep, caller: CallerDep, request: Request) -> Response:
    """Answers what a waiting run (`requires_action`) waits for: the results of client
    tool calls, approvals or denials, answers to questions. Every pending call must be
    answered exactly once; otherwise nothing changes (422). By `mode`, as for a message."""
    resumed = {"run_id": run_id, "owner": caller.owner,
               "actions": [action.model_dump(mode="json") for action in body.actions]}
    return await _in_mode(request, caller, body.mode, thread_id, run_id, lambda: _in_slot(
        client, caller, settings, lambda: client.call(thread_id, "ResumeRun", resumed)))


async def _in_mode(request: Request, caller: Caller, mode: str, thread_id: str,
                   listen_to: str, call: Callable[[], Awaitable[dict]]) -> Response:
    """Starts or resumes a run with `call`, then waits for it to stop (ended or waiting),
    streams its events (those from the call on), or answers 202 at once."""
    app = request.app
    if mode == "stream":
        # Listening before the call: the run's first events and deltas are not missed.
        listener = app.state.run_events.listen(listen_to)
        try:
            answer = await call()
        except BaseException:
            listener.close()
            raise
        return _event_stream(request, caller, thread_id, answer["run"]["run_id"],
                             answer.get("first_seq", 0) - 1, listener)
    answer = await call()
    if mode == "background":
        return _accepted(thread_id, answer["run"])
    return await _turn(app.state.thread_client, caller, thread_id, answer["run"],
                       app.state.settings.run_wait_seconds)


async def _turn(client: ThreadClient, caller: Caller, thread_id: str, run: dict,
                wait_seconds: float) -> Response:
    """The run once it stops (ended, or waiting for an action), with its messages; 202
    with its URL if it is still going after `wait_seconds`."""
    result = await _wait_for_run(client, caller, thread_id, run, wait_seconds)
    run = result["run"]
    if "messages" not in result:
        return _accepted(thread_id, run)
    messages = [MessageView.of(run["first_message"] + i, m)
                for i, m in enumerate(result["messages"])]
    reply = next((m.content for m in reversed(messages) if m.kind == "assistant_text"), None)
    return TurnView(thread_id=thread_id, run=RunView(**run), reply=reply, messages=messages,
                    message_count=result["message_count"])


async def _in_slot(client: ThreadClient, caller: Caller, settings: Settings,
                   call: Callable[[], Awaitable[dict]]) -> dict:
    """A call that starts (or resumes) a run: the run slot the admission counted is
    handed back when no run starts (refused, invalid, or an idempotent replay)."""
    started: dict = {}
    try:
        started = await call()
        return started
    finally:
        if settings.max_concurrent_runs and (not started or started.get("replayed")):
            await client.owner_call(caller.owner, "RunEnded", {})


def _accepted(thread_id: str, run: dict) -> JSONResponse:
    url = f"/v1/threads/{thread_id}/runs/{run['run_id']}"
    return JSONResponse(AcceptedView(run=RunView(**run), url=url).model_dump(mode="json"),
                        status_code=202, headers={"Location": url})


def _event_stream(request: Request, caller: Caller, thread_id: str, run_id: str, after: int,
                  listener: Listener | None = None) -> Response:
    app = request.app
    # A listener opened before the run started has everything coming: no replay needed.
    replay = listener is None
    listener = listener or app.state.run_events.listen(run_id)

    async def events() -> AsyncIterator[str]:
        try:
            async for chunk in stream_run(app.state.thread_client, listener.queue, caller.owner,
                                          thread_id, run_id, after,
                                          app.state.settings.sse_heartbeat_seconds, replay):
                yield chunk
        finally:
            listener.close()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={**SSE_HEADERS,
                                      "Location": f"/v1/threads/{thread_id}/runs/{run_id}"})


# How often a waiting request looks at its run when no in-process signal wakes it.
POLL_SECONDS = 0.25


async def _wait_for_run(client: ThreadClient, caller: Caller, thread_id: str, run: dict,
                        limit: float) -> dict:
    """Waits until the run stops running; returns GetRun's answer, with its messages."""
    run_id, deadline = run["run_id"], time.monotonic() + limit
    try:
        while True:
            remaining = deadline - time.monotonic()
            if run["status"] in WAITING:
                await wait_for_change(run_id, max(min(POLL_SECONDS, remaining), 0))
            result = await client.call(thread_id, "GetRun", {"run_id": run_id,
                                                             "with_messages": True,
                                                             "owner": caller.owner})
            run = result["run"]
            if run["status"] not in WAITING or remaining <= 0:
                return result
    finally:
        forget(run_id)


@router.get("/{thread_id}/runs/{run_id}", response_model=RunView, responses=ON_THREAD)
async def get_run(thread_id: ThreadId, run_id: RunId, client: ClientDep,
                  caller: CallerDep) -> RunView:
    return RunView(**(await client.read(thread_id, f"runs/{run_id}", caller.owner))["run"])


@router.post("/{thread_id}/runs/{run_id}/cancel", response_model=RunView,
             responses={**ON_THREAD, **WITH_BODY})
async def cancel_run(thread_id: ThreadId, run_id: RunId, client: ClientDep,
                     caller: CallerDep) -> RunView:
    """Cancels the run: a model call in flight is aborted, a queued run ends at once."""
    await client.read(thread_id, f"runs/{run_id}", caller.owner)  # 404 for others' runs
    await client.publish_cancel(thread_id, run_id)
    result = await client.call(thread_id, "CancelRun", {"run_id": run_id, "owner": caller.owner})
    return RunView(**result["run"])


@router.get("/{thread_id}/runs/{run_id}/events", response_model=EventsView,
            responses={**ON_THREAD, 200: {"content": {"text/event-stream": {}}}})
async def read_events(thread_id: ThreadId, run_id: RunId, client: ClientDep, request: Request,
                      caller: CallerDep,
                      after: Annotated[int, Query(ge=-1)] = -1,
                      last_event_id: Annotated[int | None, Header(ge=-1)] = None) -> Response:
    """The run's events after `after` (or Last-Event-ID): JSON, or with
    `Accept: text/event-stream` the same as a live stream that ends with the run."""
    after = last_event_id if last_event_id is not None else after
    if "text/event-stream" in request.headers.get("accept", ""):
        await client.read(thread_id, f"runs/{run_id}", caller.owner)  # 404 before streaming
        return _event_stream(request, caller, thread_id, run_id, after)
    result = await client.read(thread_id, f"runs/{run_id}/events?after={after}", caller.owner)
    return JSONResponse(EventsView(run=RunView(**result["run"]),
                                   events=result["events"]).model_dump(mode="json"))


@router.get("/{thread_id}/messages", response_model=HistoryView, responses=ON_THREAD)
async def read_history(thread_id: ThreadId, client: ClientDep, settings: SettingsDep,
                       caller: CallerDep,
                       offset: Annotated[int, Query(ge=0)] = 0,
                       limit: Annotated[int | None, Query(ge=1)] = None) -> HistoryView:
    limit = min(limit or settings.max_history_limit, settings.max_history_limit)
    result = await client.call(thread_id, "ReadHistory", {"offset": offset, "limit": limit,
                                                          "owner": caller.owner})
    messages = [MessageView.of(offset + i, m) for i, m in enumerate(result["messages"])]
    count = result["thread"]["message_count"]
    end = offset + len(messages)
    return HistoryView(thread_id=thread_id, messages=messages, message_count=count,
                       next_offset=end if end < count else None)
