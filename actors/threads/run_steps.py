"""Starts a run, advances it by one step, pauses and resumes it, on a thread's state.

One call of `advance` is one actor turn: it plans the next step from the last checkpoint,
takes it, and writes the new checkpoint (messages, run record, events) through the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Literal

from actors.engine.agents import AgentDefinition, UnknownAgent
from actors.engine.context import ContextCount, Window, message_tokens, opens_window
from actors.engine.engine import Engine
from actors.engine.followups import answer_call
from actors.engine.loop import count_model_call, finish, new_run, next_step
from actors.engine.messages import Message, ToolCall, ToolResult, UserText
from actors.engine.pauses import Submission, answer_from_child, expire_approvals, submit
from actors.engine.provider import ModelRequest
from actors.engine.recipes import UnknownRecipe
from actors.engine.run import (
    CallModel,
    ChildRun,
    Finish,
    ModelCallRecord,
    ParentLink,
    RunEvent,
    RunRecord,
    RunTools,
    plan_next_step,
)
from actors.engine.step import OnDelta, StepOutcome, run_tool_set, take_step
from actors.engine.tool_set import ClientTool, RunTool, ToolSetError
from actors.engine.tool_sources import HandoffRoute
from actors.engine.usage import Usage, cost_of, estimated_tokens
from actors.threads.cancellation import abortable
from actors.threads.context import Context, compact, compacted, counted, read_context
from actors.threads.state import ThreadRecord
from actors.threads.store import ThreadStore
from threadhost.common import tracing


class StaleStep(Exception):
    """The run moved on elsewhere while this step ran: its result must not be written."""


async def enqueue(store: ThreadStore, record: ThreadRecord, text: str, run_id: str,
                  agent: AgentDefinition, tools: list[RunTool],
                  parent: ParentLink | None = None,
                  origin: Literal["user", "followup"] = "user",
                  ) -> tuple[ThreadRecord, RunRecord, list[RunEvent]]:
    """A run for the message, queued behind the thread's active run."""
    run, events = new_run(run_id, record.thread_id, agent, tools, parent=parent)
    run.input_text, run.traceparent = text, tracing.current_traceparent()
    run.input_origin = origin
    record = await store.index_run(record, run_id)
    record = record.model_copy(update={"queue": [*record.queue, run_id]})
    await store.save_run(run, events)
    await store.save_record(record)
    return record, run, events


async def begin(store: ThreadStore, record: ThreadRecord, run: RunRecord,
                previous: list[RunEvent] = ()) -> tuple[ThreadRecord, RunRecord, list[RunEvent]]:
    """Starts a queued run: its message joins the history, and it becomes the active run."""
    text, run.first_message, run.input_text = run.input_text or "", record.message_count, None
    record = await _append(store, record, run, [UserText(text=text, origin=run.input_origin)])
    events = [*previous, run.transition("running")]
    record = record.model_copy(update={
        "active_run": run.run_id,
        "queue": [r for r in record.queue if r != run.run_id]})
    await store.save_run(run, events)
    await store.save_record(record)
    return record, run, events


async def cancel(store: ThreadStore, record: ThreadRecord, run: RunRecord,
                 reason: str) -> tuple[ThreadRecord, list[RunEvent]]:
    """Ends an active or queued run as cancelled (between steps: the actor's lock). Tool
    calls it left unanswered get an error result, so the history stays one every vendor
    accepts as context."""
    if run.first_message >= 0:
        mine = await store.messages(record, run.first_message, record.message_count)
        answered = {m.call_id for m in mine if isinstance(m, ToolResult)}
        record = await _append(store, record, run, [
            ToolResult(call_id=m.call_id, name=m.name, is_error=True,
                       content="not run: the run was cancelled")
            for m in mine if isinstance(m, ToolCall) and m.call_id not in answered])
    run.required_action, run.deadline = [], None
    events = finish(run, Finish(status="cancelled", reason=reason))
    record = _ended(record, run)
    await store.save_run(run, events)
    await store.save_record(record)
    return record, events


async def _append(store: ThreadStore, record: ThreadRecord, run: RunRecord,
                  messages: Sequence[Message]) -> ThreadRecord:
    """Appends the run's new messages; its range of the history now ends after them."""
    record = await store.append(record, list(messages))
    run.message_end = record.message_count
    return record


def _ended(record: ThreadRecord, run: RunRecord) -> ThreadRecord:
    active = None if record.active_run == run.run_id else record.active_run
    return record.model_copy(update={
        "active_run": active, "queue": [r for r in record.queue if r != run.run_id],
        "usage": record.usage + run.usage, "cost_usd": round(record.cost_usd + run.cost_usd, 8)})


async def resume(store: ThreadStore, record: ThreadRecord, run: RunRecord,
                 submissions: list[Submission]) -> tuple[ThreadRecord, list[RunEvent]]:
    """Answers a waiting run's pending calls; it runs again (raises NotWaiting or
    InvalidSubmission with nothing written)."""
    results, events = submit(run, submissions, record.message_count)
    return await _answered(store, record, run, results, events), events


async def answer_child(store: ThreadStore, record: ThreadRecord, run: RunRecord,
                       child: ChildRun, answer: str | None, reason: str | None,
                       ) -> tuple[ThreadRecord, list[RunEvent]]:
    """A child run ended: its answer is the result of the call that asked for it (raises
    NotWaiting with nothing written if that call has its answer already)."""
    results, events = answer_from_child(run, child, answer, reason, record.message_count)
    return await _answered(store, record, run, results, events), events


async def expire(store: ThreadStore, record: ThreadRecord,
                 run: RunRecord) -> tuple[ThreadRecord, list[RunEvent]]:
    """Denies the approvals a waiting run still waits for, if its deadline has passed."""
    results, events = expire_approvals(run, datetime.now(UTC), record.message_count)
    if not events:
        return record, []
    return await _answered(store, record, run, results, events), events


async def _answered(store: ThreadStore, record: ThreadRecord, run: RunRecord,
                    results: list[ToolResult], events: list[RunEvent]) -> ThreadRecord:
    record = await _append(store, record, run, results)
    run.updated_at = datetime.now(UTC)
    await store.save_run(run, events)
    await store.save_record(record)
    return record


async def take_over(store: ThreadStore, record: ThreadRecord, run: RunRecord,
                    engine: Engine) -> bool:
    """A running run this host found with no host taking its steps: the one that had it
    died or was cut off, maybe in the middle of a model call that the vendor bills even
    though its answer was lost. If a model call is the run's next step, what it would
    have cost (its request's input tokens, no output) is recorded as an estimate, so
    usage, budgets and bills count it. True if the run changed (to be committed)."""
    context = await read_context(store, record, run, engine)
    if not isinstance(plan_next_step(run, context.run_messages), CallModel):
        return False
    provider = await engine.providers.for_agent(run.agent)
    request = ModelRequest(system=context.system, messages=context.window.messages,
                           tools=[tool.spec for tool in run_tool_set(run, engine.tools)])
    usage = Usage(input_tokens=estimated_tokens(request.model_dump_json()))
    count_model_call(run, ModelCallRecord(
        step=run.steps, vendor=provider.vendor, model=run.agent.model, usage=usage,
        latency_ms=0.0, cost_usd=cost_of(run.agent.model, usage, engine.prices),
        estimated=True))
    await store.save_run(run, [])
    return True


# Whether the thread's owner may have this many follow-ups on the thread (and, if so,
# they are counted as the owner's).
FollowupsAllowed = Callable[[int], Awaitable[bool]]
OWNER_FULL = ("the user has as many follow-ups scheduled across their conversations as "
              "they may have: cancel one first")


async def advance(store: ThreadStore, record: ThreadRecord, run: RunRecord, engine: Engine,
                  check_fence: Callable[[], Awaitable[None]],
                  on_delta: OnDelta | None = None,
                  followups_allowed: FollowupsAllowed | None = None,
                  ) -> tuple[RunRecord, list[RunEvent]]:
    """Takes the run's next step and writes its checkpoint through the store (committed
    when the actor saves); returns the run and the new events."""
    context = await read_context(store, record, run, engine)
    counts: list[ContextCount] = []

    async def traced(step: CallModel | RunTools) -> StepOutcome:
        provider = await engine.providers.for_agent(run.agent)
        with tracing.tracer.start_as_current_span(
                f"step {step.kind}", context=tracing.context_of(run.traceparent),
                attributes={"threadhost.thread_id": run.thread_id,
                            "threadhost.run_id": run.run_id, "threadhost.step": run.steps,
                            "gen_ai.request.model": run.agent.model}):
            return await abortable(run.run_id, take_step(
                step, run, context.window.messages, provider, engine.tools, engine.prices,
                engine.retry, on_delta, engine.outside, context.system))

    async def call_model(step: CallModel) -> StepOutcome:
        nonlocal record, context
        compaction = None
        if context.window.compact_to is not None:
            record, context, compaction = await _compacted(store, record, run, engine,
                                                           context, context.window.compact_to)
        outcome = await traced(step)
        if outcome.overflow and compaction is None and not compacted(run):
            # The vendor counts more than the budget allowed for: compact down to half of
            # what was sent, and try once more.
            record, context, compaction = await _compacted(
                store, record, run, engine, context, _half_cut(context.window, run.first_message))
            if compaction is not None:
                outcome = await traced(step)
        if outcome.overflow:
            outcome.error = (f"the request does not fit {run.agent.model}'s context window "
                             f"even after compaction: {outcome.error}")
        outcome.compaction = compaction
        if outcome.model_call is not None:
            counts.append(counted(context, record, record.message_count + len(outcome.messages),
                                  outcome.model_call.usage))
        return outcome

    async def take(step: CallModel | RunTools) -> StepOutcome:
        nonlocal record
        if isinstance(step, CallModel):
            return await call_model(step)
        if handoffs := _handoffs(run, step.calls):
            return await _hand_off(run, step.calls, handoffs, engine)
        if not (asked := _of_kind(run, step.calls, "followup")):
            return await traced(step)
        # Follow-up tools act on the thread itself; the batch's other calls run as usual.
        after, answered = _followups(record, asked, engine.max_followups)
        if (len(after.followups) > len(record.followups) and followups_allowed is not None
                and not await followups_allowed(len(after.followups))):
            # Over the owner's bound: no new one (cancels and lists still go through).
            after, answered = _followups(record, asked, len(record.followups), OWNER_FULL)
        record = after
        rest = [call for call in step.calls if call.call_id not in answered]
        for message in (await traced(RunTools(calls=rest))).messages if rest else []:
            answered[message.call_id] = message
        return StepOutcome(messages=[answered[call.call_id] for call in step.calls])

    events, new = await next_step(run, context.run_messages, take, record.message_count)
    await check_fence()
    record = await _append(store, record, run, new)
    if counts:
        record = record.model_copy(update={"context_count": counts[-1]})
    if not run.active:
        record = _ended(record, run)
    run.updated_at = datetime.now(UTC)
    await store.save_run(run, events)
    await store.save_record(record)
    return run, events


async def _compacted(store: ThreadStore, record: ThreadRecord, run: RunRecord, engine: Engine,
                     context: Context, to: int,
                     ) -> tuple[ThreadRecord, Context, ModelCallRecord | None]:
    """Compacts the history up to `to` (once per run) and reads the context again."""
    made = None if compacted(run) else await compact(store, record, run, engine, to)
    if made is None:
        return record, context, None
    record, call = made
    return record, await read_context(store, record, run, engine), call


def _half_cut(window: Window, run_first: int) -> int:
    """Where to compact to when the vendor refused the window: a user's message in the
    window that leaves about half of it (at the latest, the run's first message)."""
    sized = [message_tokens(m) for m in window.messages]
    used, half = 0, sum(sized) / 2
    for offset in range(len(sized) - 1, -1, -1):
        used += sized[offset]
        index = window.start + offset
        if used > half and index <= run_first and opens_window(window.messages[offset]):
            return index
    return run_first


def _of_kind(run: RunRecord, calls: list[ToolCall], kind: str) -> list[ToolCall]:
    names = {t.name for t in run.tools or [] if t.kind == kind}
    return [call for call in calls if call.name in names]


def _handoffs(run: RunRecord, calls: list[ToolCall]) -> list[ToolCall]:
    return _of_kind(run, calls, "handoff")


def _followups(record: ThreadRecord, calls: list[ToolCall], limit: int,
               full: str | None = None) -> tuple[ThreadRecord, dict[str, Message]]:
    """Carries out the calls of follow-up tools on the thread's follow-ups; the thread
    service registers (and drops) their reminders before the step is committed."""
    followups, answered = record.followups, {}
    for call in calls:
        followups, answered[call.call_id] = answer_call(call, followups, limit,
                                                        datetime.now(UTC), full)
    return record.model_copy(update={"followups": followups}), answered


async def _hand_off(run: RunRecord, calls: list[ToolCall], handoffs: list[ToolCall],
                    engine: Engine) -> StepOutcome:
    """Passes the rest of the run to the agent of the first handoff call, with its tools
    (and the turn's client tools); the batch's other calls are not run: the new agent
    decides anew."""
    chosen = next(t for t in run.tools or [] if t.name == handoffs[0].name)
    assert isinstance(chosen.route, HandoffRoute)
    target = chosen.route.agent

    def result(call: ToolCall, text: str, error: bool = False) -> ToolResult:
        return ToolResult(call_id=call.call_id, name=call.name, content=text, is_error=error)

    try:
        agent = engine.agent(target)
        tools = await engine.tool_set(agent, [
            ClientTool(name=t.name, description=t.spec.description,
                       parameters=t.spec.parameters)
            for t in run.tools or [] if t.kind == "client"])
    except (UnknownAgent, UnknownRecipe, ToolSetError) as exc:
        return StepOutcome(messages=[
            result(call, f"cannot hand off to {target}: {exc}" if call is handoffs[0]
                   else "not run: the handoff failed", error=True) for call in calls])
    previous = run.agent.name
    run.agent, run.tools = agent, tools
    return StepOutcome(handed_to=target, messages=[
        result(call, f"Handed off from {previous} to {target}, which answers from here on.")
        if call is handoffs[0] else result(call, f"not run: handed off to {target}", True)
        for call in calls])


