"""Routes for a thread's follow-ups: runs the thread's agent starts by itself later, at a
time, after a delay, every so often or by a cron expression. The agent schedules its own
(the `schedule_followup` tool); its owner sees, adds and cancels them here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from actors.threads.contract import CancelFollowup, ListFollowups, ScheduleFollowup
from gateway.deps import CallerDep, ClientDep, ThreadId, admitted
from gateway.problems import problem_responses
from gateway.schemas import THREAD_ID_PATTERN, FollowupListView, FollowupView
from gateway.schemas import ScheduleFollowup as ScheduleFollowupBody
from gateway.threads import ON_THREAD, WITH_BODY

router = APIRouter(
    prefix="/v1/threads",
    tags=["follow-ups"],
    dependencies=[Depends(admitted)],
    responses=problem_responses(401, 403, 422, 429, 500, 503),
)
FollowupId = Annotated[str, Path(pattern=THREAD_ID_PATTERN)]


@router.get("/{thread_id}/followups", response_model=FollowupListView, responses=ON_THREAD)
async def list_followups(
    thread_id: ThreadId, client: ClientDep, caller: CallerDep
) -> FollowupListView:
    """The thread's scheduled follow-ups, soonest last scheduled last."""
    answer = await client.call(thread_id, ListFollowups(owner=caller.owner))
    return FollowupListView(
        thread_id=thread_id,
        followups=[FollowupView.model_validate(f.model_dump()) for f in answer.followups],
    )


@router.post(
    "/{thread_id}/followups",
    status_code=201,
    response_model=FollowupView,
    responses={**ON_THREAD, **WITH_BODY, **problem_responses(409)},
)
async def schedule_followup(
    thread_id: ThreadId, body: ScheduleFollowupBody, client: ClientDep, caller: CallerDep
) -> FollowupView:
    """Schedules a follow-up: when it comes due, a run starts on the thread with the note
    as its input (a message from the system's side), under the thread's agent. 409 when
    the thread has as many as it may (THREADHOST_MAX_FOLLOWUPS)."""
    answer = await client.call(
        thread_id, ScheduleFollowup(when=body.when, note=body.note, owner=caller.owner)
    )
    return FollowupView.model_validate(answer.followup.model_dump())


@router.delete("/{thread_id}/followups/{followup_id}", status_code=204, responses=ON_THREAD)
async def cancel_followup(
    thread_id: ThreadId, followup_id: FollowupId, client: ClientDep, caller: CallerDep
) -> Response:
    await client.call(thread_id, CancelFollowup(followup_id=followup_id, owner=caller.owner))
    return Response(status_code=204)
