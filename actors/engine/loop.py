"""The run loop's bookkeeping: starting a run, recording a step, finishing; and an
in-memory driver that runs a whole loop, for tests and for the benchmark's baseline.

The actor drives the same functions one step per actor turn, with a checkpoint between.
"""

from __future__ import annotations

from datetime import UTC, datetime

from actors.engine.agents import AgentDefinition
from actors.engine.messages import Message, messages_adapter
from actors.engine.pauses import pause
from actors.engine.provider import Provider
from actors.engine.retry import RetryPolicy
from actors.engine.run import (
    CallModel,
    Finish,
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


def new_run(run_id: str, thread_id: str, agent: AgentDefinition, tools: list[RunTool],
            first_message: int = -1) -> tuple[RunRecord, list[RunEvent]]:
    """A queued run with its tool set; `first_message` is set when it starts."""
    run = RunRecord(run_id=run_id, thread_id=thread_id, agent=agent, tools=tools,
                    first_message=first_message)
    created = run.event("run.created", agent=agent.name, agent_version=agent.version,
                        model=agent.model, tools=[t.name for t in tools])
    return run, [created]


def start_run(run_id: str, thread_id: str, agent: AgentDefinition, tools: list[RunTool],
              first_message: int) -> tuple[RunRecord, list[RunEvent]]:
    run, events = new_run(run_id, thread_id, agent, tools, first_message)
    return run, [*events, run.transition("running")]


def record_step(run: RunRecord, step: CallModel | RunTools, outcome: StepOutcome,
                first_index: int) -> list[RunEvent]:
    """Folds a step's outcome into the run; `first_index` is where its messages land."""
    if outcome.error is not None:
        return [run.transition("failed", outcome.error)]
    run.steps += 1
    if outcome.model_call is not None:
        run.model_calls.append(outcome.model_call)
        run.usage = run.usage + outcome.model_call.usage
        run.cost_usd = round(run.cost_usd + outcome.model_call.cost_usd, 8)
    data = {"step": run.steps, "kind": step.kind, "first_index": first_index,
            "messages": messages_adapter.dump_python(outcome.messages, mode="json")}
    if outcome.model_call is not None:
        call = outcome.model_call
        data.update(usage=call.usage.model_dump(), model=call.model, vendor=call.vendor,
                    latency_ms=call.latency_ms)
    return [run.event("step.completed", **data)]


def finish(run: RunRecord, decision: Finish) -> list[RunEvent]:
    return [run.transition(decision.status, decision.reason)]


async def run_until_done(run: RunRecord, history: list[Message], provider: Provider,
                         tools: ToolRegistry, prices: dict[str, Price],
                         retry: RetryPolicy) -> list[RunEvent]:
    """Runs every step in memory, appending to `history`, until the run ends or pauses;
    returns the events."""
    events: list[RunEvent] = []
    while run.status == "running":
        decision = plan_next_step(run, history[run.first_message:])
        if isinstance(decision, Finish):
            events += finish(run, decision)
            break
        if isinstance(decision, Pause):
            events += pause(run, decision, datetime.now(UTC))
            break
        outcome = await take_step(decision, run, history, provider, tools, prices, retry)
        events += record_step(run, decision, outcome, len(history))
        history.extend(outcome.messages)
    return events
