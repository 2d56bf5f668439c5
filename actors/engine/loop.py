"""The run loop: starting a run, one turn of its loop (`next_step`), recording a step,
finishing. The thread service takes one `next_step` per checkpoint; `run_until_done`
loops it in memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from actors.engine.agents import AgentDefinition
from actors.engine.messages import Message, messages_adapter
from actors.engine.pauses import pause
from actors.engine.provider import Provider
from actors.engine.retry import RetryPolicy
from actors.engine.run import (
    CallModel,
    Finish,
    ModelCallRecord,
    ParentLink,
    Pause,
    RunEvent,
    RunRecord,
    RunTools,
    plan_next_step,
)
from actors.engine.step import StepOutcome, take_step
from actors.engine.tool_set import RunTool
from actors.engine.tools import ToolRegistry
from actors.engine.usage import Price

if TYPE_CHECKING:
    from actors.engine.outside_tools import OutsideTools


def new_run(run_id: str, thread_id: str, agent: AgentDefinition, tools: list[RunTool],
            first_message: int = -1,
            parent: ParentLink | None = None) -> tuple[RunRecord, list[RunEvent]]:
    """A queued run with its tool set; `first_message` is set when it starts. A child
    run's first event links to the run that asked for it."""
    run = RunRecord(run_id=run_id, thread_id=thread_id, agent=agent, tools=tools,
                    first_message=first_message, parent=parent)
    linked = {"parent": parent.model_dump()} if parent is not None else {}
    created = run.event("run.created", agent=agent.name, agent_version=agent.version,
                        model=agent.model, tools=[t.name for t in tools], **linked)
    return run, [created]


def start_run(run_id: str, thread_id: str, agent: AgentDefinition, tools: list[RunTool],
              first_message: int) -> tuple[RunRecord, list[RunEvent]]:
    run, events = new_run(run_id, thread_id, agent, tools, first_message)
    return run, [*events, run.transition("running")]


def record_step(run: RunRecord, step: CallModel | RunTools, outcome: StepOutcome,
                first_index: int) -> list[RunEvent]:
    """Folds a step's outcome into the run; `first_index` is where its messages land."""
    if outcome.compaction is not None:  # paid for even if the step's own call failed
        count_model_call(run, outcome.compaction)
    if outcome.error is not None:
        return [run.transition("failed", outcome.error)]
    run.steps += 1
    if outcome.model_call is not None:
        count_model_call(run, outcome.model_call)
    data = {"step": run.steps, "kind": step.kind, "first_index": first_index,
            "messages": messages_adapter.dump_python(outcome.messages, mode="json")}
    if outcome.model_call is not None:
        call = outcome.model_call
        data.update(usage=call.usage.model_dump(), model=call.model, vendor=call.vendor,
                    latency_ms=call.latency_ms)
    if outcome.handed_to is not None:
        data.update(handoff=outcome.handed_to)
    if outcome.compaction is not None:
        data.update(compaction={"usage": outcome.compaction.usage.model_dump(),
                                "model": outcome.compaction.model})
    return [run.event("step.completed", **data)]


def count_model_call(run: RunRecord, call: ModelCallRecord) -> None:
    """Counts a model call in the run's usage and cost."""
    run.model_calls.append(call)
    run.usage = run.usage + call.usage
    run.cost_usd = round(run.cost_usd + call.cost_usd, 8)


def finish(run: RunRecord, decision: Finish) -> list[RunEvent]:
    return [run.transition(decision.status, decision.reason)]


TakeStep = Callable[[CallModel | RunTools], Awaitable[StepOutcome]]


async def next_step(run: RunRecord, run_messages: list[Message], take: TakeStep,
                    first_index: int) -> tuple[list[RunEvent], list[Message]]:
    """One turn of the run's loop, the only driver there is: plans from the run's
    messages, takes the step that comes next with `take` (one model call or one tool
    batch) and records it, then ends or pauses the run if that is what follows. Returns
    the new events and messages (`first_index`: where the messages land)."""
    decision = plan_next_step(run, run_messages)
    events: list[RunEvent] = []
    new: list[Message] = []
    if isinstance(decision, CallModel | RunTools):
        outcome = await take(decision)
        events += record_step(run, decision, outcome, first_index)
        new = outcome.messages
        if run.active:
            decision = plan_next_step(run, run_messages + new)
    if isinstance(decision, Finish) and run.active:
        events += finish(run, decision)
    elif isinstance(decision, Pause) and run.status == "running":
        events += pause(run, decision, datetime.now(UTC))
    return events, new


async def run_until_done(run: RunRecord, history: list[Message], provider: Provider,
                         tools: ToolRegistry, prices: dict[str, Price],
                         retry: RetryPolicy,
                         outside: OutsideTools | None = None) -> list[RunEvent]:
    """Every step in memory, appending to `history`, until the run ends or pauses (the
    benchmark's baseline and the engine's tests); returns the events."""
    events: list[RunEvent] = []

    async def take(step: CallModel | RunTools) -> StepOutcome:
        return await take_step(step, run, history, provider, tools, prices, retry,
                               outside=outside)

    while run.status == "running":
        more, new = await next_step(run, history[run.first_message:], take, len(history))
        events += more
        history.extend(new)
    return events
