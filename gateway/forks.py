"""The route that forks a thread: a new thread of the same owner whose history is the
first one's up to a message (actors/threads/forks.py), the first one untouched."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends

from actors.threads.contract import ForkThread, ThreadView
from gateway.deps import CallerDep, ClientDep, IdempotencyKey, ThreadId, admitted
from gateway.problems import problem_responses
from gateway.schemas import ForkThread as ForkBody
from gateway.threads import ON_THREAD, WITH_BODY
from gateway.turn import open_thread

router = APIRouter(
    prefix="/v1/threads",
    tags=["threads"],
    dependencies=[Depends(admitted)],
    responses=problem_responses(401, 403, 422, 429, 500, 503),
)


@router.post(
    "/{thread_id}/fork",
    status_code=201,
    response_model=ThreadView,
    responses={**ON_THREAD, **WITH_BODY},
)
async def fork_thread(
    thread_id: ThreadId,
    body: Annotated[ForkBody, Body()],
    client: ClientDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
) -> ThreadView:
    """A new thread whose history is this one's messages before `message_index` (0 to
    its message count; summaries that cover no later message come along), with the same
    agent and owner and no run; this thread is not changed. A cut between a tool call and
    its result is refused (422). With an `Idempotency-Key`, a retry answers the fork the
    first attempt made."""
    fork = ForkThread(
        source=thread_id,
        message_index=body.message_index,
        metadata=body.metadata or {},
        owner=caller.owner,
    )
    return await open_thread(client, caller, idempotency_key, fork)
