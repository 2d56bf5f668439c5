"""Routes for threads, their messages and their runs."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from actors.threads.contract import (
    GATEWAY_KEY_PREFIX,
    CancelRun,
    CreateThread,
    DeleteThread,
    DescribeThread,
    GetRun,
    ListRuns,
    ReadHistory,
    RunAnswer,
    RunView,
    ThreadView,
)
from actors.threads.contract import PostMessage as PostMessageRequest
from actors.threads.contract import ResumeRun as ResumeRequest
from actors.threads.owner_contract import AddThread, Admit, ListThreads, RemoveThread, RunEnded
from gateway.auth import Caller
from gateway.problems import Problem, problem_responses
from gateway.run_stream import SSE_HEADERS, Listener, stream_run
from gateway.schemas import (
    THREAD_ID_PATTERN,
    AcceptedView,
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
from gateway.thread_client import Attempts, ThreadClient, Unreachable
from threadhost.common.ids import keyed_thread_id
from threadhost.common.run_signals import forget, wait_for_change
from threadhost.common.settings import Settings

# Every route may refuse the caller, limit them, fail or find the service unreachable.
router = APIRouter(prefix="/v1/threads", tags=["threads"],  # admission added below
                   responses=problem_responses(401, 403, 422, 429, 500, 503))
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
    # A run starts with a message, and starts again when a waiting run is resumed.
    starts_run = request.method == "POST" and request.url.path.endswith(("/messages",
                                                                         "/resume"))
    await admit(client, caller, settings, starts_run)


async def admit(client: ThreadClient, caller: Caller, settings: Settings,
                starts_run: bool) -> None:
    """Counts a request (and a run it starts) against the caller's limits; 429 if over."""
    if not (settings.rate_limit_per_minute or settings.max_concurrent_runs):
        return
    answer = await client.owner_call(caller.owner, Admit(
        per_minute=settings.rate_limit_per_minute, run=starts_run,
        max_runs=settings.max_concurrent_runs))
    if not answer.allowed:
        problem = Problem(429, "rate-limited", "Too many requests",
                          "too many runs going on" if starts_run and settings.max_concurrent_runs
                          else "too many requests this minute",
                          retry_after=answer.retry_after)
        problem.headers = {"Retry-After": str(answer.retry_after)}
        raise problem


router.dependencies.append(Depends(_admitted))
ThreadId = Annotated[str, Path(pattern=THREAD_ID_PATTERN)]
RunId = Annotated[str, Path(pattern=THREAD_ID_PATTERN)]


# A caller's retry key, on every door that makes or changes something.
IdempotencyKey = Annotated[str | None, Header(max_length=200)]


@router.post("", status_code=201, response_model=ThreadView, responses=WITH_BODY)
async def create_thread(client: ClientDep, caller: CallerDep,
                        idempotency_key: IdempotencyKey = None,
                        body: Annotated[CreateThreadBody | None, Body()] = None) -> ThreadView:
    """A new thread, in the caller's list. With an `Idempotency-Key`, a retry answers
    the thread the first attempt made."""
    body = body or CreateThreadBody()
    return await open_thread(client, caller, idempotency_key, CreateThread(
        metadata=body.metadata, agent=body.agent, on_active=body.on_active,
        webhook_url=body.webhook_url, owner=caller.owner))


async def open_thread(client: ClientDep, caller: Caller, key: str | None,
                      create: CreateThread) -> ThreadView:
    """Makes the thread the key names (one of the gateway's own without a key) and lists
    it for its owner. Both calls find what a first attempt did, so they are tried again
    while the actors move; if the listing still fails, the 503 names the thread and the
    key that finishes it."""
    key = key or f"{GATEWAY_KEY_PREFIX}{uuid.uuid4().hex}"
    thread = (await client.call(keyed_thread_id(caller.owner, key), create)).thread
    try:
        await client.owner_call(caller.owner, AddThread(
            id=thread.id, agent=thread.agent, created_at=thread.created_at,
            metadata=thread.metadata))
    except Unreachable as unreachable:
        raise unreachable.made_but_not_listed(thread.id, key) from None
    return thread


@router.get("", response_model=ThreadListView)
async def list_threads(client: ClientDep, caller: CallerDep,
                       offset: Annotated[int, Query(ge=0)] = 0,
                       limit: Annotated[int, Query(ge=1, le=100)] = 20) -> ThreadListView:
    """The caller's threads, newest first, from their index: no thread is activated."""
    found = await client.owner_call(caller.owner, ListThreads(offset=offset, limit=limit))
    threads = [summary.model_dump() for summary in found.threads]
    return ThreadListView.model_validate({
        "threads": threads, "next_offset": offset + limit if len(threads) == limit else None})


@router.get("/{thread_id}", response_model=ThreadView, responses=ON_THREAD)
async def get_thread(thread_id: ThreadId, client: ClientDep, caller: CallerDep) -> ThreadView:
    return (await client.call(thread_id, DescribeThread(owner=caller.owner))).thread


@router.delete("/{thread_id}", status_code=204, responses=ON_THREAD)
async def delete_thread(thread_id: ThreadId, client: ClientDep, caller: CallerDep) -> Response:
    """Erases the thread: every piece of its state (history, runs, events), its reminders,
    and its entry in the caller's thread list."""
    try:
        await client.call(thread_id, DeleteThread(owner=caller.owner))
    except Problem as problem:
        if problem.status == 404:  # gone already (its retention ran out): the list forgets it
            await client.owner_call(caller.owner, RemoveThread(thread_id=thread_id))
        raise
    await client.owner_call(caller.owner, RemoveThread(thread_id=thread_id))
    return Response(status_code=204)


@router.get("/{thread_id}/runs", response_model=RunsView, responses=ON_THREAD)
async def list_runs(thread_id: ThreadId, client: ClientDep, caller: CallerDep,
                    offset: Annotated[int, Query(ge=0)] = 0,
                    limit: Annotated[int, Query(ge=1, le=100)] = 20) -> RunsView:
    """The thread's runs, newest first."""
    answer = await client.call(thread_id, ListRuns(offset=offset, limit=limit,
                                                   owner=caller.owner))
    return RunsView(runs=answer.runs, total=answer.total)


@router.post("/{thread_id}/messages", response_model=TurnView,
             responses={**RUN_STARTS, **ACCEPTED, 200: {"content": {"text/event-stream": {}}}})
async def post_message(thread_id: ThreadId, body: PostMessage, client: ClientDep,
                       settings: SettingsDep, caller: CallerDep, request: Request,
                       idempotency_key: IdempotencyKey = None) -> Response:
    """Starts a run with the message; by `mode`, waits for it to end, streams its events,
    or answers 202 at once."""
    if not body.content.strip():
        raise Problem(422, "invalid-request", "Empty message", "content must not be blank")
    if len(body.content) > settings.max_message_chars:
        raise Problem(422, "invalid-request", "Message too long",
                      f"content is {len(body.content)} characters; "
                      f"the limit is {settings.max_message_chars}")
    # Every turn has a key: a call retried on another host (its host died) then
    # finds the run its first attempt started instead of starting another.
    turn = PostMessageRequest(
        text=body.content, model=body.model, owner=caller.owner, on_active=body.on_active,
        idempotency_key=idempotency_key or f"{GATEWAY_KEY_PREFIX}{uuid.uuid4().hex}",
        client_tools=body.client_tools, disabled_tools=body.disabled_tools,
        wait=body.mode == "wait")

    async def take_turn() -> RunAnswer:
        attempts = Attempts()
        try:
            answer = await client.call(thread_id, turn, attempts)
        except Unreachable as unreachable:
            raise unreachable.unsure_of_turn(turn.idempotency_key) from None
        if answer.replayed and attempts.count > 1:
            # This request's own earlier attempt started the run: the slot it was
            # admitted with is the run's, not one to hand back.
            answer.replayed = False
        return answer

    # Listening on the thread: the run's id is not known before it starts.
    return await _in_mode(request, caller, body.mode, thread_id, thread_id, lambda: _in_slot(
        client, caller, settings, take_turn))


@router.post("/{thread_id}/runs/{run_id}/resume", response_model=TurnView,
             responses={**RUN_STARTS, **ACCEPTED, 200: {"content": {"text/event-stream": {}}}})
async def resume_run(thread_id: ThreadId, run_id: RunId, body: ResumeRun, client: ClientDep,
                     settings: SettingsDep, caller: CallerDep, request: Request) -> Response:
    """Answers what a waiting run (`requires_action`) waits for: the results of client
    tool calls, approvals or denials, answers to questions. Every pending call must be
    answered exactly once; otherwise nothing changes (422). By `mode`, as for a message."""
    resumed = ResumeRequest(run_id=run_id, owner=caller.owner, actions=body.actions,
                            wait=body.mode == "wait")
    return await _in_mode(request, caller, body.mode, thread_id, run_id, lambda: _in_slot(
        client, caller, settings, lambda: client.call(thread_id, resumed)))


async def _in_mode(request: Request, caller: Caller, mode: str, thread_id: str,
                   listen_to: str, call: Callable[[], Awaitable[RunAnswer]]) -> Response:
    """Starts or resumes a run with `call`, then waits for it to stop (ended or waiting),
    streams its events (those from the call on), or answers 202 at once."""
    app = request.app
    if mode == "stream":
        # Listening before the call: the run's first events and deltas are not missed.
        listener = app.state.run_events.listen(listen_to, caller.owner)
        try:
            answer = await call()
        except BaseException:
            listener.close()
            raise
        return _event_stream(request, caller, thread_id, answer.run.run_id,
                             answer.first_seq - 1, listener)
    answer = await call()
    if mode == "background":
        return _accepted(thread_id, answer.run)
    if not answer.run.stopped:  # its first steps did not finish it: wait for the rest
        answer = await _wait_for_run(app.state.thread_client, caller, thread_id, answer.run,
                                     app.state.settings.run_wait_seconds)
    if answer.messages is None:
        return _accepted(thread_id, answer.run)
    messages = [MessageView.of(answer.run.first_message + i, m)
                for i, m in enumerate(answer.messages)]
    reply = next((m.content for m in reversed(messages) if m.kind == "assistant_text"), None)
    return TurnView(thread_id=thread_id, run=answer.run, reply=reply, messages=messages,
                    message_count=answer.message_count or 0)


async def _in_slot(client: ThreadClient, caller: Caller, settings: Settings,
                   call: Callable[[], Awaitable[RunAnswer]]) -> RunAnswer:
    """A call that starts (or resumes) a run: the run slot the admission counted is
    handed back when no run starts (refused, invalid, or an idempotent replay)."""
    started: RunAnswer | None = None
    try:
        started = await call()
        return started
    finally:
        if settings.max_concurrent_runs and (started is None or started.replayed):
            await client.owner_call(caller.owner, RunEnded())


def _accepted(thread_id: str, run: RunView) -> JSONResponse:
    url = f"/v1/threads/{thread_id}/runs/{run.run_id}"
    return JSONResponse(AcceptedView(run=run, url=url).model_dump(mode="json"),
                        status_code=202, headers={"Location": url})


def _event_stream(request: Request, caller: Caller, thread_id: str, run_id: str, after: int,
                  listener: Listener | None = None) -> Response:
    app = request.app
    # A listener opened before the run started has everything coming: no replay needed.
    replay = listener is None
    listener = listener or app.state.run_events.listen(run_id, caller.owner)

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


async def _wait_for_run(client: ThreadClient, caller: Caller, thread_id: str, run: RunView,
                        limit: float) -> RunAnswer:
    """Waits until the run stops running, woken by its events (which this replica
    receives: gateway/app.py) or, in one process, by the actor itself; a read now and
    then is the fallback for events that do not come. Returns the run with its messages
    once it stopped; without them if it still runs after `limit` seconds."""
    deadline = time.monotonic() + limit
    try:
        while True:
            remaining = deadline - time.monotonic()
            await wait_for_change(run.run_id, max(min(FALLBACK_POLL_SECONDS, remaining), 0))
            if remaining <= 0 or await _stopped(client, caller, thread_id, run.run_id):
                return await client.call(thread_id, GetRun(run_id=run.run_id,
                                                           with_messages=True,
                                                           owner=caller.owner))
    finally:
        forget(run.run_id)


async def _stopped(client: ThreadClient, caller: Caller, thread_id: str, run_id: str) -> bool:
    """Whether the run stopped, as committed; not yet known if the committed state cannot
    be reached this time (an actor host going): the next poll asks again."""
    try:
        return (await client.read_run(thread_id, run_id, caller.owner)).run.stopped
    except Unreachable:
        return False


# How often a waiting request reads its run when nothing wakes it (lost events, or a
# pub/sub that does not reach this replica).
FALLBACK_POLL_SECONDS = 1.0


@router.get("/{thread_id}/runs/{run_id}", response_model=RunView, responses=ON_THREAD)
async def get_run(thread_id: ThreadId, run_id: RunId, client: ClientDep,
                  caller: CallerDep) -> RunView:
    return (await client.read_run(thread_id, run_id, caller.owner)).run


@router.post("/{thread_id}/runs/{run_id}/cancel", response_model=RunView,
             responses={**ON_THREAD, **WITH_BODY})
async def cancel_run(thread_id: ThreadId, run_id: RunId, client: ClientDep,
                     caller: CallerDep) -> RunView:
    """Cancels the run: a model call in flight is aborted, a queued run ends at once."""
    await client.read_run(thread_id, run_id, caller.owner)  # 404 for others' runs
    await client.publish_cancel(thread_id, run_id)
    return (await client.call(thread_id, CancelRun(run_id=run_id, owner=caller.owner))).run


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
        await client.read_run(thread_id, run_id, caller.owner)  # 404 before streaming
        return _event_stream(request, caller, thread_id, run_id, after)
    answer = await client.read_events(thread_id, run_id, caller.owner, after)
    return JSONResponse(EventsView(run=answer.run, events=[
        event.model_dump(mode="json") for event in answer.events]).model_dump(mode="json"))


@router.get("/{thread_id}/messages", response_model=HistoryView, responses=ON_THREAD)
async def read_history(thread_id: ThreadId, client: ClientDep, settings: SettingsDep,
                       caller: CallerDep,
                       offset: Annotated[int, Query(ge=0)] = 0,
                       limit: Annotated[int | None, Query(ge=1)] = None) -> HistoryView:
    limit = min(limit or settings.max_history_limit, settings.max_history_limit)
    answer = await client.call(thread_id, ReadHistory(offset=offset, limit=limit,
                                                      owner=caller.owner))
    messages = [MessageView.of(offset + i, m) for i, m in enumerate(answer.messages)]
    count = answer.thread.message_count
    end = offset + len(messages)
    return HistoryView(thread_id=thread_id, messages=messages, message_count=count,
                       next_offset=end if end < count else None)
