"""The kinds of step a run takes: a model call (compacting older messages first when the
window asks for it, or when the vendor says the request is too long), a tool batch, a
handoff to another agent, a batch with follow-up tools, and the estimate of a model call
a host that died may have made. engine/loop.py dispatches to them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from actors.engine.agents import UnknownAgent
from actors.engine.context import Context, half_cut
from actors.engine.errors import ContextOverflow, ProviderError
from actors.engine.followups import Followup, answer_call
from actors.engine.messages import Message, ToolCall, ToolResult, UserText
from actors.engine.provider import ModelRequest, ModelResponse, Provider, TextDelta
from actors.engine.recipes import UnknownRecipe
from actors.engine.retry import RetryPolicy, with_retries
from actors.engine.run import (
    CallModel,
    HandOff,
    ModelCallRecord,
    RunRecord,
    RunTools,
    UseFollowups,
    calls_of_kind,
    plan_next_step,
)
from actors.engine.service_tools import ToolCallContext
from actors.engine.tool_set import HOST_KINDS, ClientTool, RunTool, ToolSetError, build_tool_set
from actors.engine.tool_sources import HandoffRoute
from actors.engine.tools import ToolRegistry, unknown_tool_result
from actors.engine.usage import Price, Usage, cost_of, estimated_tokens

if TYPE_CHECKING:
    from actors.engine.engine import Engine
    from actors.engine.outside_tools import OutsideTools

# Streamed text and the attempt of the model call it comes from (1, then 2 on a retry,
# whose text starts over).
OnDelta = Callable[[str, int], Awaitable[None]]


@dataclass
class StepOutcome:
    messages: list[Message] = field(default_factory=list)
    model_call: ModelCallRecord | None = None
    # Set when the step failed for good (a provider error left after retries).
    error: str | None = None
    # The agent a handoff passed the run to in this step.
    handed_to: str | None = None
    # The model said the request did not fit its context window.
    overflow: bool = False
    # The call that compacted older messages into a summary before this step's.
    compaction: ModelCallRecord | None = None


def run_tool_set(run: RunRecord, tools: ToolRegistry) -> list[RunTool]:
    """The tools the run started with (for runs stored before tool sets were kept: the
    agent's, as the registry has them now)."""
    return run.tools if run.tools is not None else build_tool_set(run.agent, tools)


async def call_model(
    run: RunRecord,
    context: list[Message],
    provider: Provider,
    tools: ToolRegistry,
    prices: dict[str, Price],
    retry: RetryPolicy,
    on_delta: OnDelta | None = None,
    system: str | None = None,
    correction: str | None = None,
) -> StepOutcome:
    """One model call; `system` is the agent's prompt unless given (with a summary);
    `correction`, said after the context, when the last answer did not match the run's
    output schema."""
    agent = run.agent
    specs = [tool.spec for tool in run_tool_set(run, tools)]
    request = ModelRequest(
        system=agent.system_prompt if system is None else system,
        messages=context if correction is None else [*context, UserText(text=correction)],
        tools=specs,
        settings=agent.settings,
        output_schema=run.answer_schema,
    )

    attempts = 0

    async def once() -> ModelResponse:
        nonlocal attempts
        attempts += 1
        if on_delta is None:
            return await provider.complete(request)
        final: ModelResponse | None = None
        async for event in provider.stream(request):
            if isinstance(event, TextDelta):
                await on_delta(event.text, attempts)
            else:
                final = event
        if final is None:
            raise ProviderError("the stream ended without a final response")
        return final

    started = time.perf_counter()
    try:
        response = await with_retries(once, retry)
    except ProviderError as exc:
        return StepOutcome(
            error=f"{type(exc).__name__}: {exc}", overflow=isinstance(exc, ContextOverflow)
        )
    record = ModelCallRecord(
        step=run.steps,
        vendor=provider.vendor,
        model=response.model,
        usage=response.usage,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        cost_usd=cost_of(response.model, response.usage, prices),
    )
    # Each part says which agent answered: a handoff changes it within a run.
    for part in response.parts:
        part.agent = agent.name
    return StepOutcome(messages=list(response.parts), model_call=record)


async def run_tools(
    run: RunRecord, calls: list[ToolCall], tools: ToolRegistry, outside: OutsideTools | None = None
) -> StepOutcome:
    mine = {tool.name: tool for tool in run_tool_set(run, tools) if tool.kind in HOST_KINDS}
    limit = run.agent.limits.tool_timeout_seconds

    async def one(call: ToolCall) -> ToolResult:
        tool = mine.get(call.name)
        if tool is not None and tool.kind != "function":
            if outside is None:
                return ToolResult(
                    call_id=call.call_id,
                    name=call.name,
                    is_error=True,
                    content=f"{call.name} cannot be reached from this host",
                )
            context = ToolCallContext(run.thread_id, run.run_id, call.call_id, run.acting_for)
            return await outside.invoke(tool, call, context, run.agent)
        function = tools.get(call.name) if tool is not None else None
        return unknown_tool_result(call) if function is None else await function.invoke(call, limit)

    results = await asyncio.gather(*(one(call) for call in calls))
    return StepOutcome(messages=list(results))


class RunThread(Protocol):
    """What a step sees of the thread its run is on: the thread service reads and writes
    it through the thread's store (actors/threads/context.py); `run_until_done` keeps it
    in memory."""

    # The thread's scheduled follow-ups, as the step's follow-up tools leave them.
    followups: list[Followup]

    async def context(self) -> Context:
        """What the model sees at the next step."""

    async def compact(self, to: int) -> ModelCallRecord | None:
        """Folds the history up to `to` into a summary (the next context shows it); the
        summary's model call, or None if there was nothing to fold or it failed."""

    async def followups_allowed(self, count: int) -> bool:
        """Whether the thread's owner may have `count` follow-ups on it (then counted)."""

    async def spending_refused(self) -> str | None:
        """Why the run may call no model now (its owner's quota is used), if so."""

    def sent(self, context: Context, usage: Usage, new_messages: int) -> None:
        """The vendor's count of a request just sent with `context`, `new_messages` long
        in answer: for the next request's estimate to start from."""


# How the runtime wraps the work of a step (a trace span, the cancellation that aborts it).
Wrap = Callable[[CallModel | RunTools, Awaitable[StepOutcome]], Awaitable[StepOutcome]]
OWNER_FULL = (
    "the user has as many follow-ups scheduled across their conversations as "
    "they may have: cancel one first"
)


async def unwrapped(step: CallModel | RunTools, work: Awaitable[StepOutcome]) -> StepOutcome:
    return await work


def compacted(run: RunRecord) -> bool:
    """A run pays for one compaction at most."""
    return any(call.purpose == "summary" for call in run.model_calls)


async def model_step(
    step: CallModel,
    run: RunRecord,
    thread: RunThread,
    engine: Engine,
    context: Context,
    on_delta: OnDelta | None,
    wrap: Wrap,
) -> StepOutcome:
    """One model call, on a window compacted first if it must be; a request the vendor
    finds too long is compacted down to half and sent once more."""
    compaction = None
    if context.window.compact_to is not None and not compacted(run):
        compaction = await thread.compact(context.window.compact_to)
        context = await thread.context() if compaction is not None else context

    async def call(context: Context) -> StepOutcome:
        provider = await engine.providers.for_agent(run.agent)
        return await wrap(
            step,
            call_model(
                run,
                context.window.messages,
                provider,
                engine.tools,
                engine.prices,
                engine.retry,
                on_delta,
                context.system,
                step.correction,
            ),
        )

    outcome = await call(context)
    if outcome.overflow and compaction is None and not compacted(run):
        compaction = await thread.compact(half_cut(context.window, run.first_message))
        if compaction is not None:
            context = await thread.context()
            outcome = await call(context)
    if outcome.overflow:
        outcome.error = (
            f"the request does not fit {run.agent.model}'s context window "
            f"even after compaction: {outcome.error}"
        )
    outcome.compaction = compaction
    if outcome.model_call is not None:
        thread.sent(context, outcome.model_call.usage, len(outcome.messages))
    return outcome


async def tool_step(step: RunTools, run: RunRecord, engine: Engine, wrap: Wrap) -> StepOutcome:
    return await wrap(step, run_tools(run, step.calls, engine.tools, engine.outside))


async def followup_step(
    step: UseFollowups, run: RunRecord, thread: RunThread, engine: Engine, wrap: Wrap
) -> StepOutcome:
    """Follow-up tools act on the thread's follow-ups (the thread service registers their
    reminders before the step's commit); the batch's other calls run as usual."""
    asked = calls_of_kind(run, step.calls, "followup")
    now = datetime.now(UTC)
    after, answered = _followups(thread.followups, asked, engine.max_followups, now)
    if len(after) > len(thread.followups) and not await thread.followups_allowed(len(after)):
        # Over the owner's bound: no new one (cancels and lists still go through).
        after, answered = _followups(
            thread.followups, asked, len(thread.followups), now, OWNER_FULL
        )
    thread.followups = after
    rest = [call for call in step.calls if call.call_id not in answered]
    if rest:
        for message in (await tool_step(RunTools(calls=rest), run, engine, wrap)).messages:
            assert isinstance(message, ToolResult)
            answered[message.call_id] = message
    return StepOutcome(messages=[answered[call.call_id] for call in step.calls])


def _followups(
    followups: list[Followup],
    calls: list[ToolCall],
    limit: int,
    now: datetime,
    full: str | None = None,
) -> tuple[list[Followup], dict[str, Message]]:
    answered: dict[str, Message] = {}
    for call in calls:
        followups, answered[call.call_id] = answer_call(call, followups, limit, now, full)
    return followups, answered


async def handoff_step(step: HandOff, run: RunRecord, engine: Engine) -> StepOutcome:
    """Passes the rest of the run to the agent of the first handoff call, with its tools
    (and the turn's client tools); the batch's other calls are not run: the new agent
    decides anew."""
    first = calls_of_kind(run, step.calls, "handoff")[0]
    chosen = next(t for t in run.tools or [] if t.name == first.name)
    assert isinstance(chosen.route, HandoffRoute)
    target = chosen.route.agent

    def result(call: ToolCall, text: str, error: bool = False) -> ToolResult:
        return ToolResult(call_id=call.call_id, name=call.name, content=text, is_error=error)

    try:
        agent = engine.agent(target)
        tools = await engine.tool_set(
            agent,
            [
                ClientTool(
                    name=t.name, description=t.spec.description, parameters=t.spec.parameters
                )
                for t in run.tools or []
                if t.kind == "client"
            ],
        )
    except (UnknownAgent, UnknownRecipe, ToolSetError) as exc:
        return StepOutcome(
            messages=[
                result(
                    call,
                    f"cannot hand off to {target}: {exc}"
                    if call is first
                    else "not run: the handoff failed",
                    error=True,
                )
                for call in step.calls
            ]
        )
    previous = run.agent.name
    run.agent, run.tools = agent, tools
    return StepOutcome(
        handed_to=target,
        messages=[
            result(call, f"Handed off from {previous} to {target}, which answers from here on.")
            if call is first
            else result(call, f"not run: handed off to {target}", True)
            for call in step.calls
        ],
    )


async def lost_call(run: RunRecord, context: Context, engine: Engine) -> ModelCallRecord | None:
    """A running run found with no host taking its steps: the one that had it died or was
    cut off, maybe in the middle of a model call that the vendor bills even though its
    answer was lost. If a model call is the run's next step, what it would have cost (its
    request's input tokens, no output) as an estimate, so usage, budgets and bills count
    it."""
    if not isinstance(plan_next_step(run, context.run_messages), CallModel):
        return None
    provider = await engine.providers.for_agent(run.agent)
    request = ModelRequest(
        system=context.system,
        messages=context.window.messages,
        tools=[tool.spec for tool in run_tool_set(run, engine.tools)],
    )
    usage = Usage(input_tokens=estimated_tokens(request.model_dump_json()))
    return ModelCallRecord(
        step=run.steps,
        vendor=provider.vendor,
        model=run.agent.model,
        usage=usage,
        latency_ms=0.0,
        cost_usd=cost_of(run.agent.model, usage, engine.prices),
        estimated=True,
    )
