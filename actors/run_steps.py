"""Starts a run, advances it by one step, pauses and resumes it, on a thread's state.

One call of `advance` is one actor turn: it plans the next step from the last checkpoint,
takes it, and writes the new checkpoint (messages, run record, events) through the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from actors.cancellation import abortable
from actors.engine.agents import AgentCatalog, AgentDefinition, UnknownAgent
from actors.engine.loop import count_model_call, finish, new_run, next_step
from actors.engine.messages import Message, ToolCall, ToolResult, UserText
from actors.engine.outside_tools import OutsideTools
from actors.engine.pauses import Submission, answer_from_child, expire_approvals, submit
from actors.engine.provider import ModelRequest
from actors.engine.recipes import Providers, UnknownRecipe, parse_recipe
from actors.engine.retry import RetryPolicy
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
from actors.engine.tool_set import ClientTool, RunTool, ToolSetError, build_tool_set
from actors.engine.tool_sources import HandoffRoute
from actors.engine.tools import ToolRegistry
from actors.engine.usage import Price, Usage, cost_of, estimated_tokens
from actors.state import ThreadRecord
from actors.thread_store import ThreadStore
from threadhost import tracing


@dataclass(frozen=True)
class Engine:
    """What a step needs besides the thread's state."""

    catalog: AgentCatalog
    tools: ToolRegistry
    providers: Providers
    prices: dict[str, Price]
    retry: RetryPolicy
    context_window: int
    default_model: str
    # Service and MCP tools; None on a host that reaches no other app.
    outside: OutsideTools | None = None

    def agent(self, name: str, model: str | None = None) -> AgentDefinition:
        """The agent's current version, with the model for this turn resolved."""
        agent = self.catalog.current(name)
        model = model or agent.model
        if model == "default":
            model = self.default_model
        parse_recipe(model)
        return agent.model_copy(update={"model": model})

    async def tool_set(self, agent: AgentDefinition, client_tools: Sequence[ClientTool] = (),
                       disabled: Sequence[str] = ()) -> list[RunTool]:
        """A new run's tools (raises ToolSetError). An MCP server's tool list is read
        at the agent version's first run on this host, then kept."""
        outside = await self.outside.tools_for(agent) if self.outside is not None else []
        return build_tool_set(agent, self.tools, client_tools, disabled, outside)


class StaleStep(Exception):
    """The run moved on elsewhere while this step ran: its result must not be written."""


async def enqueue(store: ThreadStore, record: ThreadRecord, text: str, run_id: str,
                  agent: AgentDefinition, tools: list[RunTool],
                  parent: ParentLink | None = None,
                  ) -> tuple[ThreadRecord, RunRecord, list[RunEvent]]:
    """A run for the message, queued behind the thread's active run."""
    run, events = new_run(run_id, record.thread_id, agent, tools, parent=parent)
    run.input_text, run.traceparent = text, tracing.current_traceparent()
    record = await store.index_run(record, run_id)
    record = record.model_copy(update={"queue": [*record.queue, run_id]})
    await store.save_run(run, events)
    await store.save_record(record)
    return record, run, events


async def begin(store: ThreadStore, record: ThreadRecord, run: RunRecord,
                previous: list[RunEvent] = ()) -> tuple[ThreadRecord, RunRecord, list[RunEvent]]:
    """Starts a queued run: its message joins the history, and it becomes the active run."""
    text, run.first_message, run.input_text = run.input_text or "", record.message_count, None
    record = await _append(store, record, run, [UserText(text=text)])
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
    context, run_messages = await _context(store, record, run, engine)
    if not isinstance(plan_next_step(run, run_messages), CallModel):
        return False
    provider = await engine.providers.for_agent(run.agent)
    request = ModelRequest(system=run.agent.system_prompt, messages=context,
                           tools=[tool.spec for tool in run_tool_set(run, engine.tools)])
    usage = Usage(input_tokens=estimated_tokens(request.model_dump_json()))
    count_model_call(run, ModelCallRecord(
        step=run.steps, vendor=provider.vendor, model=run.agent.model, usage=usage,
        latency_ms=0.0, cost_usd=cost_of(run.agent.model, usage, engine.prices),
        estimated=True))
    await store.save_run(run, [])
    return True


async def _context(store: ThreadStore, record: ThreadRecord, run: RunRecord,
                   engine: Engine) -> tuple[list[Message], list[Message]]:
    """What the model sees at the run's next step, and of that the run's own messages."""
    start = max(0, min(run.first_message, record.message_count - engine.context_window))
    context = _from_first_user_message(await store.messages(record, start,
                                                            record.message_count))
    return context, context[len(context) - (record.message_count - run.first_message):]


async def advance(store: ThreadStore, record: ThreadRecord, run: RunRecord, engine: Engine,
                  check_fence: Callable[[], Awaitable[None]],
                  on_delta: OnDelta | None = None) -> tuple[RunRecord, list[RunEvent]]:
    """Takes the run's next step and writes its checkpoint through the store (committed
    when the actor saves); returns the run and the new events."""
    context, run_messages = await _context(store, record, run, engine)

    async def take(step: CallModel | RunTools) -> StepOutcome:
        if isinstance(step, RunTools) and (handoffs := _handoffs(run, step.calls)):
            return await _hand_off(run, step.calls, handoffs, engine)
        provider = await engine.providers.for_agent(run.agent)
        with tracing.tracer.start_as_current_span(
                f"step {step.kind}", context=tracing.context_of(run.traceparent),
                attributes={"threadhost.thread_id": run.thread_id,
                            "threadhost.run_id": run.run_id, "threadhost.step": run.steps,
                            "gen_ai.request.model": run.agent.model}):
            return await abortable(run.run_id, take_step(
                step, run, context, provider, engine.tools, engine.prices, engine.retry,
                on_delta, engine.outside))

    events, new = await next_step(run, run_messages, take, record.message_count)
    await check_fence()
    record = await _append(store, record, run, new)
    if not run.active:
        record = _ended(record, run)
    run.updated_at = datetime.now(UTC)
    await store.save_run(run, events)
    await store.save_record(record)
    return run, events


def _handoffs(run: RunRecord, calls: list[ToolCall]) -> list[ToolCall]:
    handoff = {t.name for t in run.tools or [] if t.kind == "handoff"}
    return [call for call in calls if call.name in handoff]


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


def _from_first_user_message(messages: list[Message]) -> list[Message]:
    """A context window must not open inside an earlier tool exchange."""
    for index, message in enumerate(messages):
        if isinstance(message, UserText):
            return messages[index:]
    return messages
