"""A run's context on a thread's state: the window the model sees at the next step, read
back from the newest page only as far as the budget reaches, and a compaction that folds
older messages into a new summary (engine/context.py and engine/summaries.py decide and
ask; this reads and writes), for the steps of the engine (`StoredThread`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from actors.engine.context import (
    Context,
    ContextCount,
    SummaryMark,
    SummaryRecord,
    message_tokens,
    plan_window,
    with_summary,
)
from actors.engine.engine import Engine
from actors.engine.followups import Followup
from actors.engine.messages import Message
from actors.engine.run import ModelCallRecord, RunRecord
from actors.engine.step import run_tool_set
from actors.engine.summaries import budget_of, room_of, summarize
from actors.engine.usage import Usage, estimated_tokens
from actors.threads.spending import OwnerSpending
from actors.threads.state import ThreadRecord
from actors.threads.store import ThreadStore

log = logging.getLogger(__name__)


async def read_context(
    store: ThreadStore, record: ThreadRecord, run: RunRecord, engine: Engine
) -> Context:
    """What the model sees at the run's next step."""
    budget = budget_of(run, engine)
    summary = await store.summary(record)
    mark = record.summary if summary is not None else None
    specs = [tool.spec.model_dump() for tool in run_tool_set(run, engine.tools)]
    fixed = estimated_tokens(run.agent.system_prompt + json.dumps(specs))
    floor = mark.end if mark is not None else 0
    ratio = record.context_count.ratio if record.context_count is not None else 1.0
    tail, tail_start = await read_back(
        store,
        record,
        floor,
        record.message_count,
        budget.tokens / ratio,
        keep_from=run.first_message,
    )
    window = plan_window(
        tail, tail_start, run.first_message, fixed, budget, record.context_count, mark
    )
    return Context(
        window=window,
        system=with_summary(run.agent.system_prompt, summary),
        run_messages=tail[run.first_message - tail_start :],
    )


async def read_back(
    store: ThreadStore,
    record: ThreadRecord,
    floor: int,
    end: int,
    tokens: float,
    keep_from: int | None = None,
) -> tuple[list[Message], int]:
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
    return ContextCount(
        start=context.window.start,
        end=end,
        summary=record.summary.index if record.summary is not None else -1,
        tokens=measured + usage.output_tokens if measured else context.window.tokens,
        ratio=round(ratio, 4),
    )


async def compact(
    store: ThreadStore, record: ThreadRecord, run: RunRecord, engine: Engine, to: int
) -> tuple[ThreadRecord, ModelCallRecord] | None:
    """Summarizes the earlier summary and messages up to `to` into a new summary, stored
    under its own key; returns the record to save and the call's cost. None if there is
    nothing to fold in, or the summarizer failed."""
    floor = record.summary.end if record.summary is not None else 0
    if to <= floor:
        return None
    previous = await store.summary(record)
    previous_text = previous.text if previous is not None else None
    room = room_of(run, engine, previous_text)
    older, first = await read_back(store, record, floor, to, room.tokens)
    made = await summarize(run, engine, room, previous_text, older, first - floor)
    if made is None:
        return None
    index = record.summary.index + 1 if record.summary is not None else 0
    call = made.call
    await store.save_summary(
        SummaryRecord(
            index=index,
            text=made.text,
            start=floor,
            end=to,
            omitted=made.omitted,
            model=call.model,
            usage=call.usage,
            cost_usd=call.cost_usd,
        )
    )
    mark = SummaryMark(index=index, end=to, tokens=estimated_tokens(made.text) + 64)
    log.info("run %s: messages %d-%d compacted into summary %d", run.run_id, floor, to, index)
    return record.model_copy(update={"summary": mark, "context_count": None}), call


class StoredThread:
    """The thread a run's step sees (engine/step.py RunThread), on the thread's store:
    the record as the step leaves it (compacted, its follow-ups changed) and the vendor's
    count of the last request."""

    def __init__(
        self,
        store: ThreadStore,
        record: ThreadRecord,
        run: RunRecord,
        engine: Engine,
        followups_allowed: Callable[[int], Awaitable[bool]] | None = None,
        spending: OwnerSpending | None = None,
    ) -> None:
        self.record, self._store, self._run, self._engine = record, store, run, engine
        self._allowed, self._spending = followups_allowed, spending
        self.count: ContextCount | None = None

    @property
    def followups(self) -> list[Followup]:
        return self.record.followups

    @followups.setter
    def followups(self, followups: list[Followup]) -> None:
        self.record = self.record.model_copy(update={"followups": followups})

    async def context(self) -> Context:
        return await read_context(self._store, self.record, self._run, self._engine)

    async def compact(self, to: int) -> ModelCallRecord | None:
        made = await compact(self._store, self.record, self._run, self._engine, to)
        if made is None:
            return None
        self.record, call = made
        return call

    async def followups_allowed(self, count: int) -> bool:
        return self._allowed is None or await self._allowed(count)

    async def spending_refused(self) -> str | None:
        return None if self._spending is None else await self._spending.refused()

    def sent(self, context: Context, usage: Usage, new_messages: int) -> None:
        self.count = counted(context, self.record, self.record.message_count + new_messages, usage)
