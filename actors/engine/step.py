"""Takes one step of a run: one model call, or one batch of tool executions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from actors.engine.errors import ContextOverflow, ProviderError
from actors.engine.messages import Message, ToolCall, ToolResult
from actors.engine.provider import ModelRequest, ModelResponse, Provider, TextDelta
from actors.engine.retry import RetryPolicy, with_retries
from actors.engine.run import CallModel, ModelCallRecord, RunRecord, RunTools
from actors.engine.service_tools import ToolCallContext
from actors.engine.tool_set import HOST_KINDS, RunTool, build_tool_set
from actors.engine.tools import ToolRegistry, unknown_tool_result
from actors.engine.usage import Price, cost_of

if TYPE_CHECKING:
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


async def call_model(run: RunRecord, context: list[Message], provider: Provider,
                     tools: ToolRegistry, prices: dict[str, Price], retry: RetryPolicy,
                     on_delta: OnDelta | None = None, system: str | None = None,
                     ) -> StepOutcome:
    """One model call; `system` is the agent's prompt unless given (with a summary)."""
    agent = run.agent
    specs = [tool.spec for tool in run_tool_set(run, tools)]
    request = ModelRequest(system=agent.system_prompt if system is None else system,
                           messages=context, tools=specs, settings=agent.settings)

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
        return StepOutcome(error=f"{type(exc).__name__}: {exc}",
                           overflow=isinstance(exc, ContextOverflow))
    record = ModelCallRecord(
        step=run.steps, vendor=provider.vendor, model=response.model, usage=response.usage,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        cost_usd=cost_of(response.model, response.usage, prices))
    # Each part says which agent answered: a handoff changes it within a run.
    for part in response.parts:
        part.agent = agent.name
    return StepOutcome(messages=list(response.parts), model_call=record)


async def run_tools(run: RunRecord, calls: list[ToolCall], tools: ToolRegistry,
                    outside: OutsideTools | None = None) -> StepOutcome:
    mine = {tool.name: tool for tool in run_tool_set(run, tools) if tool.kind in HOST_KINDS}
    limit = run.agent.limits.tool_timeout_seconds

    async def one(call: ToolCall) -> ToolResult:
        tool = mine.get(call.name)
        if tool is not None and tool.kind != "function":
            if outside is None:
                return ToolResult(call_id=call.call_id, name=call.name, is_error=True,
                                  content=f"{call.name} cannot be reached from this host")
            context = ToolCallContext(run.thread_id, run.run_id, call.call_id)
            return await outside.invoke(tool, call, context, run.agent)
        function = tools.get(call.name) if tool is not None else None
        return unknown_tool_result(call) if function is None else await function.invoke(call,
                                                                                          limit)

    results = await asyncio.gather(*(one(call) for call in calls))
    return StepOutcome(messages=list(results))


async def take_step(step: CallModel | RunTools, run: RunRecord, context: list[Message],
                    provider: Provider, tools: ToolRegistry, prices: dict[str, Price],
                    retry: RetryPolicy, on_delta: OnDelta | None = None,
                    outside: OutsideTools | None = None,
                    system: str | None = None) -> StepOutcome:
    if isinstance(step, RunTools):
        return await run_tools(run, step.calls, tools, outside)
    return await call_model(run, context, provider, tools, prices, retry, on_delta, system)
