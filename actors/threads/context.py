"""A run's context on a thread's state: the window the model sees at the next step, read
back from the newest page only as far as the budget reaches, and a compaction that folds
older messages into a new summary (engine/context.py decides; this reads and writes).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from actors.engine.context import (
    SUMMARY_PROMPT,
    Budget,
    ContextCount,
    SummaryMark,
    SummaryRecord,
    Window,
    fitted,
    message_tokens,
    plan_window,
    transcript,
    with_summary,
)
from actors.engine.errors import ProviderError
from actors.engine.messages import AssistantText, Message, UserText
from actors.engine.provider import ModelRequest, ModelResponse, ModelSettings
from actors.engine.recipes import parse_recipe
from actors.engine.retry import with_retries
from actors.engine.run import ModelCallRecord, RunRecord
from actors.engine.step import run_tool_set
from actors.engine.usage import Usage, cost_of, estimated_tokens
from actors.threads.state import ThreadRecord
from actors.threads.store import ThreadStore

if TYPE_CHECKING:
    from actors.engine.engine import Engine

log = logging.getLogger(__name__)
# A summary takes at most this share of the budget (the summarizer is asked for no more).
SUMMARY_SHARE = 8
MAX_SUMMARY_TOKENS = 4_000


@dataclass(frozen=True)
class Context:
    window: Window
    # The system prompt with the summary, if any.
    system: str
    # The run's own messages, whole (the window may carry them cut short).
    run_messages: list[Message]
    budget: Budget
    summary: SummaryRecord | None


def budget_of(run: RunRecord, engine: Engine, recipe: str | None = None) -> Budget:
    agent = run.agent
    vendor, model = parse_recipe(recipe or agent.model)
    output = agent.settings.max_output_tokens if recipe is None else None
    return Budget.of(agent.context, model or vendor, output, engine.context_windows)


async def read_context(store: ThreadStore, record: ThreadRecord, run: RunRecord,
                       engine: Engine) -> Context:
    """What the model sees at the run's next step."""
    budget = budget_of(run, engine)
    summary = await store.summary(record)
    mark = record.summary if summary is not None else None
    specs = [tool.spec.model_dump() for tool in run_tool_set(run, engine.tools)]
    fixed = estimated_tokens(run.agent.system_prompt + json.dumps(specs))
    floor = mark.end if mark is not None else 0
    ratio = record.context_count.ratio if record.context_count is not None else 1.0
    tail, tail_start = await read_back(store, record, floor, record.message_count,
                                       budget.tokens / ratio, keep_from=run.first_message)
    window = plan_window(tail, tail_start, run.first_message, fixed, budget,
                         record.context_count, mark)
    return Context(window=window, system=with_summary(run.agent.system_prompt, summary),
                   run_messages=tail[run.first_message - tail_start:], budget=budget,
                   summary=summary)


async def read_back(store: ThreadStore, record: ThreadRecord, floor: int, end: int,
                    tokens: float, keep_from: int | None = None) -> tuple[list[Message], int]:
    """Messages before `end`, back to `floor` or until they hold more than `tokens` (and
    reach back to `keep_from`): a page at a time, from the newest."""
    found: list[Message] = []
    start, used = end, 0
    limit = end if keep_from is None else min(keep_from, end)
    while start > floor and (used <= tokens or start > limit):
        first = max(floor, (start - 1) // record.page_size * record.page_size)
        page = await store.messages(record, first, start)
        found[:0] = page
        used += sum(message_tokens(m) for m in page)
        start = first
    return found, start


def counted(context: Context, record: ThreadRecord, end: int, usage: Usage) -> ContextCount:
    """The vendor's count of the request just sent, for the next one to start from."""
    measured = usage.input_tokens
    ratio = min(max(measured / context.window.estimate, 0.25), 4.0) if measured else 1.0
    return ContextCount(start=context.window.start, end=end,
                        summary=record.summary.index if record.summary is not None else -1,
                        tokens=measured + usage.output_tokens if measured else
                        context.window.tokens, ratio=round(ratio, 4))


def compacted(run: RunRecord) -> bool:
    """A run pays for one compaction at most."""
    return any(call.purpose == "summary" for call in run.model_calls)


async def compact(store: ThreadStore, record: ThreadRecord, run: RunRecord, engine: Engine,
                  to: int) -> tuple[ThreadRecord, ModelCallRecord] | None:
    """Summarizes the earlier summary and messages up to `to` into a new summary, stored
    under its own key; returns the record to save and the call's cost. None if there is
    nothing to fold in, or the summarizer failed (the window fits without it: the next
    turn tries again)."""
    floor = record.summary.end if record.summary is not None else 0
    if to <= floor:
        return None
    policy = run.agent.context
    recipe = policy.summary_model or run.agent.model
    budget = budget_of(run, engine, recipe)
    previous = await store.summary(record)
    room = budget.tokens - estimated_tokens(SUMMARY_PROMPT) - (
        estimated_tokens(previous.text) if previous is not None else 0)
    older, first = await read_back(store, record, floor, to, room)
    # What fits the summarizer's own request, newest first; older messages are left out.
    sized = [min(message_tokens(m), budget.message_cap) for m in older]
    skip = 0
    while skip < len(older) and sum(sized[skip:]) > room:
        skip += 1
    omitted = first - floor + skip
    text = transcript(previous.text if previous is not None else None,
                      [fitted(m, budget.message_cap) for m in older[skip:]], omitted)
    limit = min(budget.tokens // SUMMARY_SHARE, MAX_SUMMARY_TOKENS)
    request = ModelRequest(system=SUMMARY_PROMPT, messages=[UserText(text=text)],
                           settings=ModelSettings(max_output_tokens=limit), purpose="summary")
    provider = await engine.providers.for_agent(run.agent.model_copy(update={"model": recipe}))
    started = time.perf_counter()
    try:
        response: ModelResponse = await with_retries(lambda: provider.complete(request),
                                                     engine.retry)
    except ProviderError as exc:
        log.warning("run %s: compaction failed (%s): the older messages are left out "
                    "without a summary this turn", run.run_id, type(exc).__name__)
        return None
    summary_text = "".join(p.text for p in response.parts if isinstance(p, AssistantText))
    summary_text = summary_text[:limit * 4]
    index = record.summary.index + 1 if record.summary is not None else 0
    cost = cost_of(response.model, response.usage, engine.prices)
    await store.save_summary(SummaryRecord(
        index=index, text=summary_text, start=floor, end=to, omitted=omitted,
        model=response.model, usage=response.usage, cost_usd=cost))
    mark = SummaryMark(index=index, end=to, tokens=estimated_tokens(summary_text) + 64)
    call = ModelCallRecord(step=run.steps, vendor=provider.vendor, model=response.model,
                           usage=response.usage, cost_usd=cost, purpose="summary",
                           latency_ms=round((time.perf_counter() - started) * 1000, 2))
    log.info("run %s: messages %d-%d compacted into summary %d", run.run_id, floor, to, index)
    return record.model_copy(update={"summary": mark, "context_count": None}), call
