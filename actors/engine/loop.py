"""The run loop: starting a run, one turn of its loop (`next_step`: plan, take the step
of its kind, record it, settle), finishing. The thread service takes one `next_step` per
checkpoint; `run_until_done` loops it in memory.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, assert_never

from actors.engine.agents import AgentCatalog, AgentDefinition
from actors.engine.context import Context, Window
from actors.engine.engine import Engine
from actors.engine.followups import Followup
from actors.engine.messages import Message, messages_adapter
from actors.engine.pauses import pause
from actors.engine.provider import Provider
from actors.engine.retry import RetryPolicy
from actors.engine.run import (
    CallModel,
    Finish,
    HandOff,
    ModelCallRecord,
    NextStep,
    ParentLink,
    Pause,
    RunCreated,
    RunEvent,
    RunRecord,
    RunTools,
    StepCompleted,
    UseFollowups,
    plan_next_step,
)
from actors.engine.step import (
    OnDelta,
    RunThread,
    StepOutcome,
    Wrap,
    followup_step,
    handoff_step,
    model_step,
    tool_step,
    unwrapped,
)
from actors.engine.tool_set import RunTool
from actors.engine.tools import ToolRegistry
from actors.engine.usage import Price, Usage

if TYPE_CHECKING:
    from actors.engine.outside_tools import OutsideTools


def new_run(
    run_id: str,
    thread_id: str,
    agent: AgentDefinition,
    tools: list[RunTool],
    first_message: int = -1,
    parent: ParentLink | None = None,
) -> tuple[RunRecord, list[RunEvent]]:
    """A queued run with its tool set; `first_message` is set when it starts. A child
    run's first event links to the run that asked for it."""
    run = RunRecord(
        run_id=run_id,
        thread_id=thread_id,
        agent=agent,
        tools=tools,
        first_message=first_message,
        parent=parent,
    )
    linked = {"parent": parent.model_dump()} if parent is not None else {}
    created = run.event(
        RunCreated,
        agent=agent.name,
        agent_version=agent.version,
        model=agent.model,
        tools=[t.name for t in tools],
        **linked,
    )
    return run, [created]


def start_run(
    run_id: str, thread_id: str, agent: AgentDefinition, tools: list[RunTool], first_message: int
) -> tuple[RunRecord, list[RunEvent]]:
    run, events = new_run(run_id, thread_id, agent, tools, first_message)
    return run, [*events, run.transition("running")]


def record_step(
    run: RunRecord, step: CallModel | RunTools, outcome: StepOutcome, first_index: int
) -> list[RunEvent]:
    """Folds a step's outcome into the run; `first_index` is where its messages land."""
    if outcome.compaction is not None:  # paid for even if the step's own call failed
        count_model_call(run, outcome.compaction)
    if outcome.error is not None:
        return [run.transition("failed", outcome.error)]
    run.steps += 1
    if isinstance(step, CallModel) and step.correction is not None:
        run.output_retried = True
    if outcome.model_call is not None:
        count_model_call(run, outcome.model_call)
    data = {
        "step": run.steps,
        "kind": step.kind,
        "first_index": first_index,
        "messages": messages_adapter.dump_python(outcome.messages, mode="json"),
    }
    if outcome.model_call is not None:
        call = outcome.model_call
        data.update(
            usage=call.usage.model_dump(),
            model=call.model,
            vendor=call.vendor,
            latency_ms=call.latency_ms,
        )
    if outcome.handed_to is not None:
        data.update(handoff=outcome.handed_to)
    if outcome.compaction is not None:
        data.update(
            compaction={
                "usage": outcome.compaction.usage.model_dump(),
                "model": outcome.compaction.model,
            }
        )
    return [run.event(StepCompleted, **data)]


def count_model_call(run: RunRecord, call: ModelCallRecord) -> None:
    """Counts a model call in the run's usage and cost."""
    run.model_calls.append(call)
    run.usage = run.usage + call.usage
    run.cost_usd = round(run.cost_usd + call.cost_usd, 8)


def finish(run: RunRecord, decision: Finish) -> list[RunEvent]:
    if decision.output is None:
        return [run.transition(decision.status, decision.reason)]
    run.output = decision.output
    return [run.transition(decision.status, decision.reason, output=decision.output)]


async def next_step(
    run: RunRecord,
    thread: RunThread,
    engine: Engine,
    first_index: int,
    on_delta: OnDelta | None = None,
    wrap: Wrap = unwrapped,
) -> tuple[list[RunEvent], list[Message]]:
    """One turn of the run's loop, the only driver there is (the thread service takes one
    per checkpoint, `run_until_done` loops it in memory): plans from the run's messages,
    takes the step that comes next and records it, then ends or pauses the run if that is
    what follows. Returns the new events and messages (`first_index`: where the messages
    land)."""
    context = await thread.context()
    decision = plan_next_step(run, context.run_messages)
    if isinstance(decision, CallModel) and (refused := await thread.spending_refused()):
        decision = Finish(status="incomplete", reason=refused)
    if isinstance(decision, Finish | Pause):
        return _settled(run, decision), []
    match decision:
        case CallModel():
            outcome = await model_step(decision, run, thread, engine, context, on_delta, wrap)
        case HandOff():
            outcome = await handoff_step(decision, run, engine)
        case UseFollowups():
            outcome = await followup_step(decision, run, thread, engine, wrap)
        case RunTools():
            outcome = await tool_step(decision, run, engine, wrap)
        case _:
            assert_never(decision)
    events = record_step(run, decision, outcome, first_index)
    if run.active:
        events += _settled(run, plan_next_step(run, context.run_messages + outcome.messages))
    return events, outcome.messages


def _settled(run: RunRecord, decision: NextStep) -> list[RunEvent]:
    """The run's end or pause, if that is what comes next."""
    match decision:
        case Finish() if run.active:
            return finish(run, decision)
        case Pause() if run.status == "running":
            return pause(run, decision, datetime.now(UTC))
        case _:
            return []


class _InMemory:
    """A thread in memory: its whole history is the window, nothing is compacted."""

    def __init__(self, run: RunRecord, history: list[Message]) -> None:
        self._run, self._history = run, history
        self.followups: list[Followup] = []

    async def context(self) -> Context:
        window = Window(start=0, messages=self._history, tokens=0, estimate=0)
        return Context(
            window=window,
            system=self._run.agent.system_prompt,
            run_messages=self._history[self._run.first_message :],
        )

    async def compact(self, to: int) -> ModelCallRecord | None:
        return None

    async def followups_allowed(self, count: int) -> bool:
        return True

    async def spending_refused(self) -> str | None:
        return None

    def sent(self, context: Context, usage: Usage, new_messages: int) -> None:
        pass


class _OneProvider:
    def __init__(self, provider: Provider) -> None:
        self._provider = provider

    async def for_agent(self, agent: AgentDefinition) -> Provider:
        return self._provider


async def run_until_done(
    run: RunRecord,
    history: list[Message],
    provider: Provider,
    tools: ToolRegistry,
    prices: dict[str, Price],
    retry: RetryPolicy,
    outside: OutsideTools | None = None,
) -> list[RunEvent]:
    """Every step in memory, appending to `history`, until the run ends or pauses (the
    benchmark's baseline and the engine's tests): the production loop, step for step,
    with one provider and the whole history as the window. Returns the events."""
    engine = Engine(
        catalog=AgentCatalog(),
        tools=tools,
        providers=_OneProvider(provider),
        prices=prices,
        retry=retry,
        context_windows={},
        default_model=run.agent.model,
        outside=outside,
    )
    thread = _InMemory(run, history)
    events: list[RunEvent] = []
    while run.status == "running":
        more, new = await next_step(run, thread, engine, len(history))
        events += more
        history.extend(new)
    return events
