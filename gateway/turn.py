"""A turn, for every door: the one place a message or a resumption becomes a run.

A door (/v1/threads, chat completions, responses, MCP) translates its wire format into a
`TurnPlan` and its answer back; here, in order: the text is checked, the key is settled
(the caller's, or the gateway's own, so a retried call finds the run of the first), the
caller is admitted with a run slot, a thread is opened if the plan names none and earlier
messages are stored, a stream starts listening before the call, the run starts or resumes,
and by the plan's mode the turn waits for the run to stop, or not.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Literal

from actors.engine.messages import Message
from actors.engine.output import OutputSchema
from actors.engine.pauses import Submission
from actors.engine.tool_set import ClientTool
from actors.threads.contract import (
    GATEWAY_KEY_PREFIX,
    CreateThread,
    ForkThread,
    GetRun,
    ImportHistory,
    NotFound,
    OnActive,
    RunAnswer,
    RunView,
    ThreadAnswer,
    ThreadView,
)
from actors.threads.contract import PostMessage as PostMessageRequest
from actors.threads.contract import ResumeRun as ResumeRequest
from actors.threads.owner_contract import AddEndUser, AddThread, RunEnded
from gateway.auth import Caller
from gateway.deps import Door, ThreadRef, admit
from gateway.problems import InvalidRequest, Problem
from gateway.run_stream import Listener
from gateway.thread_client import Attempts, ThreadClient, Unreachable
from threadhost.common.ids import keyed_thread_id, thread_of_key
from threadhost.common.owners import end_user_of, service_owner
from threadhost.common.run_signals import forget, wait_for_change
from threadhost.common.settings import Settings

Mode = Literal["wait", "stream", "background"]
# How often a waiting request reads its run when nothing wakes it (lost events, or a
# pub/sub that does not reach this replica).
FALLBACK_POLL_SECONDS = 1.0


@dataclass
class TurnPlan:
    """What a door asks for, in threadhost's terms."""

    # The thread to continue; None opens one for `agent` (its metadata says which door).
    thread_id: str | None
    # The caller's key the thread was named by: a message opens the thread of a key that
    # has none yet (for `agent`, as a thread the plan names none of).
    thread_key: str | None = None
    agent: str | None = None
    door: str = "threads"
    # Either a user message that starts a run...
    text: str | None = None
    # ...or the answers a waiting run waits for (`run_id`; None: the thread's active run).
    actions: list[Submission] = field(default_factory=list)
    run_id: str | None = None
    # The door's name for the text, in what a refusal says.
    text_field: str = "content"
    # Stored first, as they are: a new thread's history, or user messages before the last.
    earlier: list[Message] = field(default_factory=list)
    recipe: str | None = None
    client_tools: list[ClientTool] = field(default_factory=list)
    disabled_tools: list[str] = field(default_factory=list)
    output_schema: OutputSchema | None = None
    on_active: OnActive = "enqueue"
    mode: Mode = "wait"
    idempotency_key: str | None = None


@dataclass
class Turn:
    thread_id: str
    answer: RunAnswer
    # The call ids whose results this turn submitted: its text is what follows them.
    submitted: set[str]
    # Streamed: the run's events, heard from before the call.
    listener: Listener | None


async def take_turn(door: Door, plan: TurnPlan) -> Turn:
    """Starts or resumes the run of the plan; in wait mode, waits until it stops (or the
    wait ends: the answer then has no messages)."""
    _check_text(plan, door.settings)
    if plan.thread_id is not None and plan.thread_key is None:
        # A door's `key:<key>` where it takes a thread id: the caller's thread of the key.
        ref = ThreadRef.of(door.caller, plan.thread_id)
        plan.thread_id, plan.thread_key = ref.id, ref.key
    key = plan.idempotency_key or f"{GATEWAY_KEY_PREFIX}{uuid.uuid4().hex}"
    # The run's thread, known before it is opened: a new one is the key's (open_thread).
    slot_thread = plan.thread_id or keyed_thread_id(door.caller.owner, key)
    admission = await admit(
        door.client, door.caller, door.settings, starts_run=True, thread_id=slot_thread
    )
    took = admission is not None and not admission.held
    answer, listener = await _in_slot(door, slot_thread, took, _started(door, plan, key))
    thread_id = answer.run.thread_id
    if plan.mode == "wait" and not answer.run.stopped:
        answer = await wait_for_run(
            door.client, door.caller, thread_id, answer.run, door.settings.run_wait_seconds
        )
    return Turn(thread_id, answer, {a.call_id for a in plan.actions}, listener)


def _check_text(plan: TurnPlan, settings: Settings) -> None:
    if plan.text is None:
        return
    if not plan.text.strip():
        raise InvalidRequest(f"{plan.text_field} must not be blank", title="Empty message")
    if len(plan.text) > settings.max_message_chars:
        raise InvalidRequest(
            f"{plan.text_field} is {len(plan.text)} characters; the limit "
            f"is {settings.max_message_chars}",
            title="Message too long",
        )


async def _started(door: Door, plan: TurnPlan, key: str) -> tuple[RunAnswer, Listener | None]:
    """The run started (or resumed) by the plan's call, with the stream's listener."""
    client, caller, request = door.client, door.caller, door.request
    thread_id = plan.thread_id
    if thread_id is None:
        if plan.text is None:
            raise InvalidRequest(
                "tool results go to the thread that asked for them: name it",
                title="No thread to resume",
                status=400,
            )
        thread_id = (
            await open_thread(
                client,
                caller,
                key,
                CreateThread(agent=plan.agent, owner=caller.owner, metadata={"door": plan.door}),
            )
        ).id
    if plan.earlier:
        await client.call(
            thread_id, ImportHistory(messages=plan.earlier, owner=caller.owner, idempotency_key=key)
        )
    call = _call_of(plan, caller, key)
    # Streamed: listening on the thread before the call (the run's id is not known before
    # it starts), so the run's first events and deltas are not missed.
    listener = (
        request.app.state.run_events.listen(thread_id, caller.owner)
        if plan.mode == "stream" and request is not None
        else None
    )
    attempts = Attempts()
    try:
        answer = await _called(door, plan, thread_id, call, attempts)
    except BaseException as failed:
        if listener is not None:
            listener.close()
        if isinstance(failed, Unreachable):
            raise failed.unsure_of_turn(key) from None
        raise
    if answer.replayed and attempts.count > 1:
        # This request's own earlier attempt started the run: the slot it was admitted
        # with is the run's, not one to hand back.
        answer.replayed = False
    return answer, listener


async def _called(
    door: Door,
    plan: TurnPlan,
    thread_id: str,
    call: PostMessageRequest | ResumeRequest,
    attempts: Attempts,
) -> RunAnswer:
    """The thread's answer to the call; a message to a key that names no thread yet
    opens it first (tried at once: every later turn finds it)."""
    try:
        return await door.client.call(thread_id, call, attempts)
    except Problem as problem:
        if not (
            plan.thread_key and plan.text is not None and problem.kind == NotFound.problem_type
        ):
            raise
    create = CreateThread(
        agent=plan.agent, owner=door.caller.owner, metadata={"door": plan.door}, key=plan.thread_key
    )
    await open_keyed_thread(door.client, door.caller, create)
    return await door.client.call(thread_id, call, attempts)


def _call_of(plan: TurnPlan, caller: Caller, key: str) -> PostMessageRequest | ResumeRequest:
    """The thread's call: a message that starts a run, or the answers that resume one."""
    if plan.text is not None:
        return PostMessageRequest(
            text=plan.text,
            model=plan.recipe,
            owner=caller.owner,
            on_active=plan.on_active,
            idempotency_key=key,
            client_tools=plan.client_tools,
            disabled_tools=plan.disabled_tools,
            output_schema=plan.output_schema,
            wait=plan.mode == "wait",
        )
    return ResumeRequest(
        run_id=plan.run_id,
        owner=caller.owner,
        actions=plan.actions,
        wait=plan.mode == "wait",
        idempotency_key=key,
    )


async def _in_slot(
    door: Door,
    thread_id: str,
    took: bool,
    call: Awaitable[tuple[RunAnswer, Listener | None]],
) -> tuple[RunAnswer, Listener | None]:
    """A call that starts (or resumes) a run: the run slot the admission took for the
    thread is handed back when no run starts (refused, invalid, or an idempotent replay);
    one the thread held already stays its run's."""
    started: RunAnswer | None = None
    try:
        started, listener = await call
        return started, listener
    finally:
        if took and door.settings.max_concurrent_runs and (started is None or started.replayed):
            await door.client.owner_call(door.caller.owner, RunEnded(thread_id=thread_id))


async def open_thread(
    client: ThreadClient, caller: Caller, key: str | None, create: CreateThread | ForkThread
) -> ThreadView:
    """Makes the thread the key names (one of the gateway's own without a key), new or
    as a fork of another, and lists it for its owner. Both calls find what a first
    attempt did, so they are tried again while the actors move; if the listing still
    fails, the 503 names the thread and the key that finishes it."""
    key = key or f"{GATEWAY_KEY_PREFIX}{uuid.uuid4().hex}"
    thread = (await client.call(keyed_thread_id(caller.owner, key), create)).thread
    try:
        await _list(client, caller, thread)
    except Unreachable as unreachable:
        raise unreachable.made_but_not_listed(thread.id, key) from None
    return thread


async def open_keyed_thread(
    client: ThreadClient, caller: Caller, create: CreateThread
) -> ThreadAnswer:
    """The caller's thread of `create.key`, made if there is none, and listed: every
    replica asks the one actor of that key's id, which makes it once. Listed again when
    found (a listing is kept once, and an earlier call may have made the thread and
    failed to list it)."""
    assert create.key is not None
    answer = await client.call(thread_of_key(caller.owner, create.key), create)
    await _list(client, caller, answer.thread)
    return answer


async def _list(client: ThreadClient, caller: Caller, thread: ThreadView) -> None:
    """Lists the thread for its owner; an end user's first thread lists them for their
    service (once per end user, not per thread: the service's actor is no funnel)."""
    listed = await client.owner_call(
        caller.owner,
        AddThread(
            id=thread.id,
            agent=thread.agent,
            created_at=thread.created_at,
            metadata=thread.metadata,
            key=thread.key,
        ),
    )
    end_user = end_user_of(caller.owner)
    if listed.first and end_user is not None:
        await client.owner_call(service_owner(end_user.service), AddEndUser(end_user=end_user.user))


async def wait_for_run(
    client: ThreadClient, caller: Caller, thread_id: str, run: RunView, limit: float
) -> RunAnswer:
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
                return await client.call(
                    thread_id, GetRun(run_id=run.run_id, with_messages=True, owner=caller.owner)
                )
    finally:
        forget(run.run_id)


async def _stopped(client: ThreadClient, caller: Caller, thread_id: str, run_id: str) -> bool:
    """Whether the run stopped, as committed; not yet known if the committed state cannot
    be reached this time (an actor host going): the next poll asks again."""
    try:
        return (await client.read_run(thread_id, run_id, caller.owner)).run.stopped
    except Unreachable:
        return False
