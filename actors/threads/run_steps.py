"""A run's checkpoints on a thread's state: queued, started, advanced by one step,
paused, answered, cancelled and ended, each written through the store.

The steps themselves are the engine's (engine/loop.py `next_step`): `advance` hands it
the thread as the store holds it and writes the checkpoint it leaves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Literal

from actors.engine.agents import AgentDefinition
from actors.engine.engine import Engine
from actors.engine.loop import count_model_call, finish, new_run, next_step
from actors.engine.messages import Message, ToolCall, ToolResult, UserText
from actors.engine.output import OutputSchema
from actors.engine.pauses import Submission, answer_from_child, expire_approvals, submit
from actors.engine.run import (
    CallModel,
    ChildRun,
    Finish,
    ParentLink,
    RunEvent,
    RunRecord,
    RunTools,
)
from actors.engine.step import OnDelta, StepOutcome, Wrap, lost_call
from actors.engine.tool_set import RunTool
from actors.threads.cancellation import abortable
from actors.threads.context import StoredThread, read_context
from actors.threads.model_slots import NoModelSlot, TakeSlots, bounds_of
from actors.threads.spending import OwnerSpending
from actors.threads.state import ThreadRecord
from actors.threads.store import ThreadStore
from threadhost.common import tracing
from threadhost.common.owners import end_user_of


class StaleStep(Exception):
    """The run moved on elsewhere while this step ran: its result must not be written."""


async def enqueue(
    store: ThreadStore,
    record: ThreadRecord,
    text: str,
    run_id: str,
    agent: AgentDefinition,
    tools: list[RunTool],
    parent: ParentLink | None = None,
    origin: Literal["user", "followup"] = "user",
    output_schema: OutputSchema | None = None,
) -> tuple[ThreadRecord, RunRecord, list[RunEvent]]:
    """A run for the message, queued behind the thread's active run."""
    run, events = new_run(run_id, record.thread_id, agent, tools, parent=parent)
    run.output_schema = output_schema
    run.input_text, run.traceparent = text, tracing.current_traceparent()
    run.input_origin = origin
    run.acting_for = end_user_of(record.owner)
    record = await store.runs.add(record, run_id)
    record = record.model_copy(update={"queue": [*record.queue, run_id]})
    await store.save_run(run, events)
    await store.save_record(record)
    return record, run, events


async def begin(
    store: ThreadStore, record: ThreadRecord, run: RunRecord, previous: Sequence[RunEvent] = ()
) -> tuple[ThreadRecord, RunRecord, list[RunEvent]]:
    """Starts a queued run: its message joins the history, and it becomes the active run."""
    text, run.first_message, run.input_text = run.input_text or "", record.message_count, None
    record = await _append(store, record, run, [UserText(text=text, origin=run.input_origin)])
    # Where its message landed: a thread's followers read it from there.
    events = [*previous, run.transition("running", first_message=run.first_message)]
    record = record.model_copy(
        update={"active_run": run.run_id, "queue": [r for r in record.queue if r != run.run_id]}
    )
    await store.save_run(run, events)
    await store.save_record(record)
    return record, run, events


async def cancel(
    store: ThreadStore, record: ThreadRecord, run: RunRecord, reason: str
) -> tuple[ThreadRecord, list[RunEvent]]:
    """Ends an active or queued run as cancelled (between steps: the actor's lock). Tool
    calls it left unanswered get an error result, so the history stays one every vendor
    accepts as context."""
    if run.first_message >= 0:
        mine = await store.messages(record, run.first_message, record.message_count)
        answered = {m.call_id for m in mine if isinstance(m, ToolResult)}
        record = await _append(
            store,
            record,
            run,
            [
                ToolResult(
                    call_id=m.call_id,
                    name=m.name,
                    is_error=True,
                    content="not run: the run was cancelled",
                )
                for m in mine
                if isinstance(m, ToolCall) and m.call_id not in answered
            ],
        )
    run.required_action, run.deadline = [], None
    events = finish(run, Finish(status="cancelled", reason=reason))
    record = _ended(record, run)
    await store.save_run(run, events)
    await store.save_record(record)
    return record, events


async def _append(
    store: ThreadStore, record: ThreadRecord, run: RunRecord, messages: Sequence[Message]
) -> ThreadRecord:
    """Appends the run's new messages; its range of the history now ends after them."""
    record = await store.append(record, list(messages))
    run.message_end = record.message_count
    return record


def _ended(record: ThreadRecord, run: RunRecord) -> ThreadRecord:
    active = None if record.active_run == run.run_id else record.active_run
    return record.model_copy(
        update={
            "active_run": active,
            "queue": [r for r in record.queue if r != run.run_id],
            "usage": record.usage + run.usage,
            "cost_usd": round(record.cost_usd + run.cost_usd, 8),
        }
    )


async def resume(
    store: ThreadStore, record: ThreadRecord, run: RunRecord, submissions: list[Submission]
) -> tuple[ThreadRecord, list[RunEvent]]:
    """Answers a waiting run's pending calls; it runs again (raises NotWaiting or
    InvalidSubmission with nothing written)."""
    results, events = submit(run, submissions, record.message_count)
    return await _answered(store, record, run, results, events), events


async def answer_child(
    store: ThreadStore,
    record: ThreadRecord,
    run: RunRecord,
    child: ChildRun,
    answer: str | None,
    reason: str | None,
) -> tuple[ThreadRecord, list[RunEvent]]:
    """A child run ended: its answer is the result of the call that asked for it (raises
    NotWaiting with nothing written if that call has its answer already)."""
    results, events = answer_from_child(run, child, answer, reason, record.message_count)
    return await _answered(store, record, run, results, events), events


async def expire(
    store: ThreadStore, record: ThreadRecord, run: RunRecord
) -> tuple[ThreadRecord, list[RunEvent]]:
    """Denies the approvals a waiting run still waits for, if its deadline has passed."""
    results, events = expire_approvals(run, datetime.now(UTC), record.message_count)
    if not events:
        return record, []
    return await _answered(store, record, run, results, events), events


async def _answered(
    store: ThreadStore,
    record: ThreadRecord,
    run: RunRecord,
    results: list[ToolResult],
    events: list[RunEvent],
) -> ThreadRecord:
    record = await _append(store, record, run, results)
    run.updated_at = datetime.now(UTC)
    await store.save_run(run, events)
    await store.save_record(record)
    return record


async def take_over(
    store: ThreadStore, record: ThreadRecord, run: RunRecord, engine: Engine
) -> bool:
    """A running run this host found with no host taking its steps: a model call its
    previous host may have made is counted as an estimate (engine/step.py `lost_call`).
    True if the run changed (to be committed)."""
    call = await lost_call(run, await read_context(store, record, run, engine), engine)
    if call is None:
        return False
    count_model_call(run, call)
    await store.save_run(run, [])
    return True


# Whether the thread's owner may have this many follow-ups on the thread (and, if so,
# they are counted as the owner's).
FollowupsAllowed = Callable[[int], Awaitable[bool]]


async def advance(
    store: ThreadStore,
    record: ThreadRecord,
    run: RunRecord,
    engine: Engine,
    check_fence: Callable[[], Awaitable[None]],
    on_delta: OnDelta | None = None,
    followups_allowed: FollowupsAllowed | None = None,
    spending: OwnerSpending | None = None,
    take_slots: TakeSlots | None = None,
    model_bounds: dict[str, int] | None = None,
) -> tuple[RunRecord, list[RunEvent]]:
    """Takes the run's next step (the engine's `next_step`) and writes its checkpoint
    through the store (committed when the actor saves); returns the run and the new
    events. What the step's model calls spent is counted for the owner's quotas."""
    thread = StoredThread(store, record, run, engine, followups_allowed, spending)
    tokens, cost = run.usage.total_tokens, run.cost_usd
    bounds = bounds_of(run.agent.model, model_bounds or {})
    wrap = _traced_and_abortable(run, take_slots, bounds)
    events, new = await next_step(run, thread, engine, record.message_count, on_delta, wrap)
    await check_fence()
    if spending is not None:
        spending.spent(run.usage.total_tokens - tokens, run.cost_usd - cost)
    record = await _append(store, thread.record, run, new)
    if thread.count is not None:
        record = record.model_copy(update={"context_count": thread.count})
    if not run.active:
        record = _ended(record, run)
    run.updated_at = datetime.now(UTC)
    await store.save_run(run, events)
    await store.save_record(record)
    return run, events


def _traced_and_abortable(run: RunRecord, take_slots: TakeSlots | None, bounds: list[str]) -> Wrap:
    """A step's work in a trace span of its own, aborted if the run is cancelled; a model
    call first takes its slots under the bounds on its model (NoModelSlot if none came
    free within the wait), and gives them back when it ends."""

    async def slotted(work: Awaitable[StepOutcome]) -> StepOutcome:
        assert take_slots is not None
        give_back = await take_slots(bounds, f"{run.run_id}.{run.steps}")
        if give_back is None:
            close = getattr(work, "close", None)
            if close is not None:
                close()  # never awaited: nothing of it ran
            raise NoModelSlot(f"no slot free under {', '.join(bounds)}")
        try:
            return await work
        finally:
            give_back()

    async def wrap(step: CallModel | RunTools, work: Awaitable[StepOutcome]) -> StepOutcome:
        with tracing.tracer.start_as_current_span(
            f"step {step.kind}",
            context=tracing.context_of(run.traceparent),
            attributes={
                "threadhost.thread_id": run.thread_id,
                "threadhost.run_id": run.run_id,
                "threadhost.step": run.steps,
                "gen_ai.request.model": run.agent.model,
            },
        ):
            if isinstance(step, CallModel) and take_slots is not None and bounds:
                work = slotted(work)
            return await abortable(run.run_id, work)

    return wrap
