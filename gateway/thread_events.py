"""The route of a whole thread's events: every run of it, as it happens or from a point
(gateway/thread_stream.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from actors.threads.contract import THREAD_EVENT_CURSOR
from gateway.deps import CallerDep, ClientDep, ThreadId, admitted
from gateway.problems import problem_responses
from gateway.run_stream import SSE_HEADERS
from gateway.schemas import ThreadEventsView
from gateway.thread_stream import stream_thread
from gateway.threads import ON_THREAD

router = APIRouter(
    prefix="/v1/threads",
    tags=["threads"],
    dependencies=[Depends(admitted)],
    responses=problem_responses(401, 403, 422, 429, 500, 503),
)
Cursor = Annotated[str | None, Query(pattern=THREAD_EVENT_CURSOR)]


@router.get(
    "/{thread_id}/events",
    response_model=ThreadEventsView,
    responses={**ON_THREAD, 200: {"content": {"text/event-stream": {}}}},
)
async def thread_events(
    thread_id: ThreadId,
    client: ClientDep,
    request: Request,
    caller: CallerDep,
    after: Cursor = None,
    last_event_id: Annotated[str | None, Header(pattern=THREAD_EVENT_CURSOR)] = None,
) -> Response:
    """Every run of the thread, in order: each run's events (`run.created`, its status,
    its steps, with `Accept: text/event-stream` its token deltas too), run after run. An
    event's id is `<run_id>.<seq>`: `after` (or Last-Event-ID) reads on from one, `after=`
    (empty) from the thread's first run; without either, from the start of the run going
    on, or from now. As server-sent events the stream stays open for the runs to come,
    whoever starts them (another client, a follow-up, another replica), until the client
    goes or the thread is deleted (a last `thread.gone` event). As JSON, one page."""
    after = last_event_id if last_event_id is not None else after
    if "text/event-stream" not in request.headers.get("accept", ""):
        answer = await client.read_thread_events(thread_id, caller.owner, after)
        return JSONResponse(ThreadEventsView.of(answer).model_dump(mode="json"))
    # Listening before the first read: nothing between the two is missed.
    listener = request.app.state.run_events.listen(thread_id, caller.owner)
    try:
        first = await client.read_thread_events(thread_id, caller.owner, after)
    except BaseException:
        listener.close()
        raise
    settings = request.app.state.settings

    async def events() -> AsyncIterator[str]:
        try:
            async for chunk in stream_thread(
                client,
                listener.queue,
                caller.owner,
                thread_id,
                first,
                settings.sse_heartbeat_seconds,
            ):
                yield chunk
        finally:
            listener.close()

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)
