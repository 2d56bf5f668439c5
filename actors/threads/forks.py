"""A fork: a new thread whose history is another's up to a message, copied once. It is
the caller's (who may reach the source: its owner, or the service of its end user), and
listed as theirs.

The new thread's actor makes it from what the source committed (read past the source's
actor, so a fork never waits for a step in progress there): the history pages before the
fork point, the last one cut there, and the newest summary that covers no message past
it. From then on both threads are threads like any other, each writing only its own
keys, so a turn on either costs what it cost before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from actors.engine.context import SummaryMark, SummaryRecord
from actors.engine.messages import ToolCall, ToolResult
from actors.engine.usage import estimated_tokens
from actors.threads.contract import ForkThread, Invalid, NotFound, ThreadAnswer, ThreadView
from actors.threads.state import ForkMark, HistoryPage, ThreadRecord, page_range
from actors.threads.store import ThreadStore
from threadhost.common.owners import owns


class ThreadForks:
    """A collaborator of the thread service: the new thread's side of a fork."""

    def __init__(
        self, thread_id: str, store: ThreadStore, commit: Callable[[], Awaitable[None]]
    ) -> None:
        self._thread_id, self._store, self._commit = thread_id, store, commit

    async def fork(
        self, request: ForkThread, source: ThreadStore
    ) -> ThreadAnswer | NotFound | Invalid:
        """Becomes a fork of `source` (what it committed); a repeat of the same fork finds
        it, anything else asked of this id is NotFound."""
        record = await self._store.record()
        if record is not None:
            mark = ForkMark(thread_id=request.source, message_index=request.message_index)
            if record.forked_from != mark or not owns(request.owner, record.owner):
                return NotFound.of(self._thread_id)
            return ThreadAnswer(thread=ThreadView.of(record))
        made = await fork(self._thread_id, request, source, self._store)
        if isinstance(made, NotFound | Invalid):
            return made
        await self._commit()
        return ThreadAnswer(thread=ThreadView.of(made), created=True)


async def fork(
    thread_id: str, request: ForkThread, source: ThreadStore, target: ThreadStore
) -> ThreadRecord | NotFound | Invalid:
    """Writes the fork into `target` (its record last) and returns its record; the
    source is only read."""
    found = await source.record()
    if found is None or not owns(request.owner, found.owner):
        return NotFound.of(request.source)
    at = request.message_index
    if at > found.message_count:
        return Invalid(
            detail=f"message_index: {at} is past the thread's {found.message_count} messages"
        )
    pages = [await source.page(found, index) for index in page_range(found, 0, at)]
    if pages:
        last = pages[-1]
        kept = last.messages[: at - last.index * found.page_size]
        pages[-1] = HistoryPage(index=last.index, messages=kept)
    if (unanswered := _unanswered(pages)) is not None:
        return Invalid(
            detail=f"message_index: {at} cuts the tool call {unanswered} from its result; "
            f"fork before the call or after its result"
        )
    now = datetime.now(UTC)
    record = ThreadRecord(
        thread_id=thread_id,
        created_at=now,
        updated_at=now,
        message_count=at,
        page_size=found.page_size,
        metadata=request.metadata or found.metadata,
        owner=request.owner,
        agent=found.agent,
        retention_seconds=found.retention_seconds,
        on_active=found.on_active,
        webhook_url=found.webhook_url,
        forked_from=ForkMark(thread_id=request.source, message_index=at),
    )
    for page in pages:
        await target.save_page(page)
    covering = await _covering(source, found, at)
    if covering is not None:
        summary, tokens = covering
        await target.save_summary(summary.model_copy(update={"index": 0}))
        record.summary = SummaryMark(index=0, end=summary.end, tokens=tokens)
    await target.save_record(record)
    return record


async def _covering(
    source: ThreadStore, record: ThreadRecord, at: int
) -> tuple[SummaryRecord, int] | None:
    """The source's newest summary of no message past `at`, with its size in tokens."""
    mark = record.summary
    if mark is None:
        return None
    for index in range(mark.index, -1, -1):
        summary = await source.summary_at(index)
        if summary is not None and summary.end <= at:
            tokens = mark.tokens if index == mark.index else estimated_tokens(summary.text)
            return summary, tokens
    return None


def _unanswered(pages: list[HistoryPage]) -> str | None:
    """A tool call in the copied tail whose result is not copied, if there is one (a run's
    calls and results are side by side, so the last page tells)."""
    tail = [m for page in pages[-2:] for m in page.messages]
    answered = {m.call_id for m in tail if isinstance(m, ToolResult)}
    calls = (m.call_id for m in tail if isinstance(m, ToolCall) and m.call_id not in answered)
    return next(calls, None)
