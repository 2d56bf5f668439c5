"""Other agents as tools, on the thread service's side: a run that calls one waits for a
child run on a thread of its own, and goes on with its answer (docs/tools.md, "Other
agents"). The child's thread starts the run when asked (`start_child_run`) and tells the
parent when it ends; the parent asks again, now and then, while it waits.
"""

from __future__ import annotations

import logging
from typing import Protocol

from actors.engine.pauses import NotWaiting as RunNotWaiting
from actors.engine.run import (
    TERMINAL,
    ChildRun,
    ParentLink,
    PendingAction,
    RunEvent,
    RunRecord,
    child_input,
)
from actors.threads import metrics
from actors.threads.contract import (
    Busy,
    ChildRunAnswer,
    ChildRunEnded,
    CreateThread,
    Done,
    Invalid,
    NotFound,
    PostMessage,
    RunAnswer,
    StartChildRun,
    ThreadAnswer,
)
from actors.threads.effects import ChildUnreachable, Effects
from actors.threads.owner_contract import AddThread
from actors.threads.reads import ThreadReads
from actors.threads.reminders import Reminder
from actors.threads.run_steps import answer_child
from actors.threads.state import ThreadRecord
from actors.threads.store import ThreadStore
from threadhost.common import logs
from threadhost.common.settings import Settings

log = logging.getLogger(__name__)


class Turns(Protocol):
    """What the child runs of a thread ask of its service."""

    async def create(self, request: CreateThread) -> ThreadAnswer | Invalid | NotFound: ...

    async def post_message(self, request: PostMessage) -> RunAnswer | NotFound | Invalid | Busy: ...

    async def commit(self) -> None: ...

    def publish(self, run: RunRecord, events: list[RunEvent]) -> None: ...

    async def running_again(self, record: ThreadRecord, run: RunRecord) -> None: ...


class ThreadChildren:
    def __init__(
        self,
        thread_id: str,
        store: ThreadStore,
        effects: Effects,
        settings: Settings,
        reads: ThreadReads,
        turns: Turns,
    ) -> None:
        self.thread_id, self._store, self._effects = thread_id, store, effects
        self._settings, self._reads, self._turns = settings, reads, turns

    async def start_child_run(self, request: StartChildRun) -> ChildRunAnswer | Invalid | NotFound:
        """This thread is a child: runs the agent for the parent's call (the thread is
        made, for the parent's owner, on the first call); a repeat answers with the run
        the first started, and with its answer once it completed."""
        record = await self._store.record()
        if record is None:
            made = await self._turns.create(
                CreateThread(
                    owner=request.owner,
                    agent=request.agent,
                    metadata={
                        "parent_thread": request.parent.thread_id,
                        "parent_run": request.parent.run_id,
                    },
                )
            )
            if not isinstance(made, ThreadAnswer):
                return made
            self._effects.tell_owner(
                request.owner,
                AddThread(
                    id=self.thread_id,
                    agent=request.agent,
                    created_at=made.thread.created_at,
                    metadata=made.thread.metadata,
                ),
            )
        started = await self._turns.post_message(
            PostMessage(
                owner=request.owner,
                text=request.text,
                parent=request.parent,
                idempotency_key=request.idempotency_key,
            )
        )
        if not isinstance(started, RunAnswer):
            return (
                started
                if isinstance(started, Invalid | NotFound)
                else Invalid(detail=started.detail)
            )
        run = await self._store.known_run(started.run.run_id)
        record = await self._store.known_record()
        return ChildRunAnswer(run=started.run, answer=await self._reads.answer_of(record, run))

    async def child_run_ended(self, request: ChildRunEnded) -> Done:
        """A child run for one of this thread's calls ended: its answer is the call's
        result, and the run goes on when it waits for nothing else. Heard once: a repeat
        (the child told us, and we asked it too) changes nothing."""
        record = await self._store.record()
        run = await self._store.run(request.run_id) if record is not None else None
        if record is None or run is None or record.owner != request.owner:
            return Done()
        await self._child_answered(record, run, request.child, request.answer, request.reason)
        return Done()

    async def ask(self, run_id: str) -> None:
        """Starts (or asks again after) the child runs the run waits for; a child that
        ended gives its answer. A call beyond the depth or fan-out limits is answered with
        an error at once. A child that cannot be asked now is asked at the next check."""
        record = await self._store.known_record()
        run = await self._store.known_run(run_id)
        depth = (run.parent.depth if run.parent else 0) + 1
        asked_before = len(run.children)  # children that ended, before this round
        for n, action in enumerate(children_asked(run)):
            child = ChildRun(
                call_id=action.call_id,
                agent=action.agent or "",
                thread_id=action.thread_id or "",
                run_id="",
                status="failed",
            )
            refusal = self._beyond_limits(depth, asked_before + n)
            if refusal is not None:
                record, run = await self._child_answered(record, run, child, None, refusal)
                continue
            asked = await self._start(record, run, action, child, depth)
            if asked is None:
                continue
            if not isinstance(asked, ChildRunAnswer):
                record, run = await self._child_answered(record, run, child, None, asked.detail)
            elif asked.run.status in TERMINAL:
                ended = ChildRun.model_validate(
                    {
                        **child.model_dump(),
                        "run_id": asked.run.run_id,
                        "status": asked.run.status,
                        "usage": asked.run.usage,
                        "cost_usd": asked.run.cost_usd,
                    }
                )
                record, run = await self._child_answered(
                    record, run, ended, asked.answer, asked.run.reason
                )

    def _beyond_limits(self, depth: int, asked: int) -> str | None:
        """Why a child run may not start: too deep, or the run asked too many."""
        if depth > self._settings.max_agent_depth:
            return (
                f"agents may ask agents {self._settings.max_agent_depth} levels "
                "deep, and this call would go deeper"
            )
        if asked >= self._settings.max_child_runs:
            return (
                f"a run may ask other agents {self._settings.max_child_runs} times,"
                " and this run has"
            )
        return None

    async def _start(
        self,
        record: ThreadRecord,
        run: RunRecord,
        action: PendingAction,
        child: ChildRun,
        depth: int,
    ) -> ChildRunAnswer | Invalid | NotFound | None:
        """The child thread's answer to starting the run; None if it cannot be asked now
        (it is asked at the next check)."""
        try:
            return await self._effects.start_child(
                child.thread_id,
                StartChildRun(
                    owner=record.owner,
                    agent=child.agent,
                    text=child_input(action.arguments),
                    parent=ParentLink(
                        thread_id=self.thread_id,
                        run_id=run.run_id,
                        call_id=action.call_id,
                        depth=depth,
                    ),
                ),
            )
        except ChildUnreachable as exc:
            log.warning(
                "run %s: child thread %s not reached (%s); asked again later",
                run.run_id,
                child.thread_id,
                exc,
            )
            return None

    async def _child_answered(
        self,
        record: ThreadRecord,
        run: RunRecord,
        child: ChildRun,
        answer: str | None,
        reason: str | None,
    ) -> tuple[ThreadRecord, RunRecord]:
        logs.run_id.set(run.run_id)
        try:
            record, events = await answer_child(self._store, record, run, child, answer, reason)
        except RunNotWaiting:
            return record, run
        await self._turns.commit()
        self._turns.publish(run, events)
        metrics.observe(events, 0.0)
        log.info(
            "run %s: the %s run for call %s ended %s",
            run.run_id,
            child.agent,
            child.call_id,
            child.status,
        )
        if run.status == "running":
            await self._effects.forget(Reminder.children())
            await self._turns.running_again(record, run)
        return record, run

    async def tell_parent(self, record: ThreadRecord, run: RunRecord) -> None:
        """A child run ended: its parent hears of it (and asks, if it did not)."""
        if run.parent is None or run.active:
            return
        self._effects.tell_parent(
            run.parent.thread_id,
            ChildRunEnded(
                owner=record.owner,
                run_id=run.parent.run_id,
                child=ChildRun(
                    call_id=run.parent.call_id,
                    agent=run.agent.name,
                    thread_id=self.thread_id,
                    run_id=run.run_id,
                    status=run.status,
                    usage=run.usage,
                    cost_usd=run.cost_usd,
                ),
                answer=await self._reads.answer_of(record, run),
                reason=run.reason,
            ),
        )


def children_asked(run: RunRecord) -> list[PendingAction]:
    """The agent calls a waiting run waits for."""
    if run.status != "requires_action":
        return []
    return [action for action in run.required_action if action.type == "agent_run"]
