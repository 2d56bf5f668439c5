"""What happens to a thread: a message is admitted, a run starts, steps, pauses, resumes,
is cancelled and ends. Plain Python over the thread's store, the engine and the effects
the hosting runtime carries out (actors/threads/effects.py); the Thread actor is a thin
adapter around it, and the unit tests drive it with a dict-backed store.

A run advances in steps, each ending in a checkpoint that is committed before its events
are published. A caller that waits has the first steps taken inside its own call;
otherwise, and after a step that crossed the chain budget, the next steps come in a later
turn (`chain_step`), so the lock is never held past one slow step. The checkpoints of a
chain of quick steps (and the start of a caller's run) are committed together when the
chain ends, or beside the first step that takes a while (actors/threads/checkpoints.py). A run
that a caller's call started and stopped is committed whole, and its events stay in its
log: nobody could follow it, so they are not published to the gateways.
The watchdog restarts a run whose chain was lost with its host: set in the background
by the first commit that leaves a run running (a run that stops inside a caller's call
never needs one), cleared when it stops (a thread's deactivation is too late: daprd must
not be called while it deactivates).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Literal

from actors.engine.agents import UnknownAgent
from actors.engine.engine import Engine
from actors.engine.pauses import InvalidSubmission
from actors.engine.pauses import NotWaiting as RunNotWaiting
from actors.engine.recipes import UnknownRecipe
from actors.engine.run import (
    RunEvent,
    RunRecord,
)
from actors.engine.tool_set import ToolSetError
from actors.threads import metrics
from actors.threads.announcements import Announcements
from actors.threads.cancellation import StepAborted
from actors.threads.chain_clock import ChainClock
from actors.threads.checkpoints import Checkpoints
from actors.threads.children import ThreadChildren, children_asked
from actors.threads.contract import (
    GATEWAY_KEY_PREFIX,
    Busy,
    CancelRun,
    CreateThread,
    DeleteThread,
    Done,
    ImportHistory,
    Invalid,
    NotFound,
    NotWaiting,
    PostMessage,
    ResumeRun,
    RunAnswer,
    RunNotFound,
    ThreadAnswer,
    ThreadView,
    WatchdogFired,
)
from actors.threads.effects import Effects
from actors.threads.fence import Fence
from actors.threads.followups import ThreadFollowups
from actors.threads.forks import ThreadForks
from actors.threads.lifecycle import lifecycle
from actors.threads.model_slots import RETRY_AFTER, NoModelSlot
from actors.threads.owner_contract import Admit, RunEnded
from actors.threads.push_targets import ThreadPush
from actors.threads.reads import ThreadReads
from actors.threads.reminders import FOLLOWUP_PREFIX, Reminder
from actors.threads.run_events import DeltaBatcher, RunMessage, StepEventsMessage
from actors.threads.run_steps import (
    StaleStep,
    advance,
    begin,
    cancel,
    enqueue,
    expire,
    resume,
    take_over,
)
from actors.threads.spending import OwnerSpending
from actors.threads.state import IDEMPOTENCY_KEYS, ThreadRecord
from actors.threads.status_told import StatusTold
from actors.threads.store import ThreadStore
from actors.threads.watchdog_duty import WatchdogDuty
from threadhost.common import logs
from threadhost.common.settings import Settings

log = logging.getLogger(__name__)

# The gateway's own idempotency keys are needed only while daprd may retry the call: only
# the latest few are kept.
GATEWAY_KEYS = 4
# Kept under its request's key + this when a caller's earlier messages were imported.
IMPORTED = "#imported"


class ThreadService:
    """One thread's calls and steps. Its reads, child runs, follow-ups, push targets and
    its making as a fork are collaborators (`reads`, `children`, `followups`, `push`,
    `forks`), which the actor calls directly."""

    def __init__(
        self,
        thread_id: str,
        store: ThreadStore,
        engine: Engine,
        effects: Effects,
        settings: Settings,
    ) -> None:
        self.thread_id = thread_id
        self._store, self._engine, self._effects, self._settings = store, engine, effects, settings
        self._announcements = Announcements(store)
        self._budget = settings.step_chain_budget_ms / 1000
        self._fence = Fence(effects.read_committed, self._budget)
        self._checkpoints = Checkpoints(self.commit, self._to_gateways, self._budget)
        self._watchdog = WatchdogDuty(effects)
        self._status = StatusTold(effects, store)
        self.reads = ThreadReads(thread_id, store)
        self.children = ThreadChildren(thread_id, store, effects, settings, self.reads, self)
        self.followups = ThreadFollowups(
            thread_id, store, engine, effects, settings, self.reads, self._announcements, self
        )
        self.push = ThreadPush(store, self.reads, self._announcements, self.commit)
        self.forks = ThreadForks(thread_id, store, self.commit)

    async def activated(self) -> None:
        """A run its previous host left running goes on; one queued behind a run that
        ended starts."""
        record = await self._store.record()
        if record is not None:
            self.followups.activated(record)
        if record is not None and (leftovers := await self._announcements.leftovers(record)):
            # Committed, and maybe never sent: their host died before they went out.
            self._effects.announce(leftovers, self._announcements.handed_out(leftovers))
        if record is not None and record.active_run is not None:
            run = await self._store.run(record.active_run)
            if run is not None and run.status == "running":
                logs.run_id.set(run.run_id)
                if await take_over(self._store, record, run, self._engine):
                    await self.commit()
                    log.warning(
                        "run %s taken over mid-way: a model call its previous host "
                        "may have made is counted as an estimate",
                        run.run_id,
                    )
                await self._effects.chain_step()
        elif record is not None:
            await self._start_next(record)

    # --- calls ---------------------------------------------------------------------------

    async def create(self, request: CreateThread) -> ThreadAnswer | Invalid | NotFound:
        agent = request.agent or self._settings.default_agent
        try:
            definition = self._engine.catalog.current(agent)
        except UnknownAgent:
            return Invalid(detail=f"no agent named {agent!r}")
        url = request.webhook_url
        if url is not None and (definition.webhook is None or not definition.webhook.allows(url)):
            return Invalid(
                detail=f"webhook_url: the agent {agent!r} allows no webhook there "
                f"(its webhook.allowed_urls)"
            )
        record = await self._store.record()
        if record is None:
            record = ThreadRecord(
                thread_id=self.thread_id,
                metadata=request.metadata,
                page_size=self._settings.history_page_size,
                agent=agent,
                owner=request.owner,
                key=request.key,
                on_active=request.on_active,
                webhook_url=url,
                retention_seconds=definition.retention_seconds,
            )
            await self._store.save_record(record)
            await self.commit()
            return ThreadAnswer(thread=ThreadView.of(record), created=True)
        if record.owner != request.owner:
            return NotFound.of(self.thread_id)
        return ThreadAnswer(thread=ThreadView.of(record))

    async def post_message(self, request: PostMessage) -> RunAnswer | NotFound | Invalid | Busy:
        """Starts a run with the message. While another run is active, `on_active` says
        what happens: enqueue (it runs next), reject, or interrupt (the active run is
        cancelled). A repeated `idempotency_key` answers with the first run instead."""
        return await self.admit(request, "user")

    async def admit(
        self,
        request: PostMessage,
        origin: Literal["user", "followup"],
    ) -> RunAnswer | NotFound | Invalid | Busy:
        """A message from the user, or a follow-up's note from the system's side."""
        record = await self.reads.owned(request)
        if record is None:
            return NotFound.of(self.thread_id)
        key = request.idempotency_key
        if key and key in record.idempotency:
            run = await self._store.known_run(record.idempotency[key])
            return await self.reads.run_answer(record, run, request.wait, replayed=True)
        if record.active_run is not None and request.on_active == "reject":
            return Busy(run_id=record.active_run)
        try:
            agent = self._engine.agent(record.agent, request.model)
            tools = await self._engine.tool_set(
                agent, request.client_tools, disabled=request.disabled_tools
            )
        except (UnknownAgent, UnknownRecipe, ToolSetError) as exc:
            return Invalid(detail=str(exc))
        if record.active_run is not None and request.on_active == "interrupt":
            record = await self._cancel(record, record.active_run, "interrupted by a new message")
        record, run, events = await enqueue(
            self._store,
            record,
            request.text,
            f"run_{uuid.uuid4().hex}",
            agent,
            tools,
            request.parent,
            origin,
            request.output_schema,
        )
        if request.parent is not None:
            # Nobody admitted it at a gateway (a follow-up's took it when it came due);
            # it hands its slot back when it stops.
            self.slot(record.owner, taken=True)
        if key:
            record = _remember(record, key, run.run_id)
            await self._store.save_record(record)
        logs.run_id.set(run.run_id)
        if record.active_run is not None:  # queued behind the active run
            await self.commit()
            self.publish(run, events)
            metrics.observe(events, 0.0)
            return await self.reads.run_answer(record, run, False)
        await self._begin(record, run, events, chain=not request.wait)
        if request.wait:
            await self.take_steps(caller_waits=True)
        else:  # a stream that listens from the start sees the run begin at once
            self._effects.flush_events()
        return await self.reads.run_answer(
            await self._store.known_record(), await self._store.known_run(run.run_id), request.wait
        )

    async def import_history(self, request: ImportHistory) -> ThreadAnswer | NotFound | Busy:
        """Appends a caller's earlier messages as they are, with no run (while no run is
        going on: a run's messages must stay together)."""
        record = await self.reads.owned(request)
        if record is None:
            return NotFound.of(self.thread_id)
        imported = f"{request.idempotency_key}{IMPORTED}" if request.idempotency_key else None
        if imported and imported in record.idempotency:  # a repeat: appended already
            return ThreadAnswer(thread=ThreadView.of(record))
        if record.active_run is not None:
            return Busy(run_id=record.active_run)
        record = await self._store.append(record, request.messages)
        if imported:
            record = _remember(record, imported, "")
        await self._store.save_record(record)
        await self.commit()
        return ThreadAnswer(thread=ThreadView.of(record))

    async def delete(self, request: DeleteThread) -> Done | NotFound:
        """Removes every piece of the thread's state; a run going on is cancelled first."""
        record = await self.reads.owned(request)
        if record is None:
            return NotFound.of(self.thread_id)
        for run_id in [*([record.active_run] if record.active_run else []), *record.queue]:
            record = await self._cancel(record, run_id, "the thread was deleted")
        await self._store.delete_all(record)
        await self._effects.commit()
        self._effects.unwatch()
        await self.followups.forget_all(record)
        if record.retention_seconds is not None:
            await self._effects.forget(Reminder.erase())
        # Its owner's list, which is not always the caller's (a service deletes its end
        # user's thread).
        await self._effects.leave_owner(record.owner)
        log.info("thread deleted")
        return Done()

    async def cancel_run(self, request: CancelRun) -> RunAnswer | NotFound | RunNotFound:
        """Cancels an active or queued run; a step in progress ends first (the lock)."""
        found = await self.reads.owned_run(request, request.run_id)
        if isinstance(found, NotFound | RunNotFound):
            return found
        record, run = found
        if run.active:
            record = await self._cancel(record, run.run_id, "cancelled by the caller")
            await self._start_next(record)
            run = await self._store.known_run(run.run_id)
        return await self.reads.run_answer(record, run, False)

    async def resume_run(
        self, request: ResumeRun
    ) -> RunAnswer | NotFound | RunNotFound | Invalid | NotWaiting:
        """Answers what a waiting run waits for (tool results, approvals, answers); the
        run goes on from any host. A submission that does not answer every pending call
        exactly once, or comes when the run is not waiting, changes nothing."""
        record = await self.reads.owned(request)
        if record is None:
            return NotFound.of(self.thread_id)
        key = request.idempotency_key
        if key and key in record.idempotency:  # a repeat: the run the first one resumed
            run = await self._store.known_run(record.idempotency[key])
            return await self.reads.run_answer(record, run, request.wait, replayed=True)
        run_id = request.run_id or record.active_run  # None: the thread's active run
        if run_id is None:
            return NotWaiting(detail="the thread has no run waiting for these answers")
        found = await self.reads.owned_run(request, run_id)
        if isinstance(found, NotFound | RunNotFound):
            return found
        record, run = found
        logs.run_id.set(run.run_id)
        had_deadline = run.deadline is not None
        try:
            record, events = await resume(self._store, record, run, request.actions)
        except InvalidSubmission as exc:
            return Invalid(detail=str(exc))
        except RunNotWaiting as exc:
            return NotWaiting(detail=str(exc))
        if key:
            record = _remember(record, key, run.run_id)
            await self._store.save_record(record)
        if request.wait and not had_deadline:  # committed with the steps it takes next
            self._fence.confirmed()
            self._checkpoints.add(partial(self.publish, run, events))
        else:
            await self.commit()
            if had_deadline:  # in this turn, before its next step can pause with a new one
                await self._effects.forget(Reminder.deadline(run.run_id))
            self.publish(run, events)
        metrics.observe(events, 0.0)
        log.info("run %s resumed", run.run_id)
        self._watchdog.start(run.run_id, now=not (request.wait and not had_deadline), unseen=False)
        if request.wait:
            await self.take_steps(caller_waits=True)
        else:
            await self._effects.chain_step()
            self._effects.flush_events()
        return await self.reads.run_answer(
            await self._store.known_record(),
            await self._store.known_run(run.run_id),
            request.wait,
            first_seq=events[0].seq,
        )

    # --- steps ---------------------------------------------------------------------------

    async def take_steps(self, caller_waits: bool = False) -> None:
        """Steps of the active run, each committed, then published: in a turn of their
        own, or inside the call of a caller that waits, right behind its commit.

        Steps that finish quickly (a local tool batch, a scripted model) go on in this
        turn while it is within its budget; the step that crosses the budget hands over
        to a later turn, so the lock is never held past one slow step. Their events go
        out together when they end; a waiting caller gets the messages in its answer, so
        the text of a step that ended before any of it went out is not sent on its own.
        """
        try:
            await self._steps_within_budget(new_turn=not caller_waits)
            await self._checkpoints.flush()
        except Exception:
            # Nothing of the turn that was not committed is kept, or seen.
            self._watchdog.dropped()
            self._checkpoints.drop()
            await self._effects.discard()
            self._forget_unsaved()
            raise
        finally:
            self._effects.flush_events(text_of_ended_steps=not caller_waits)

    async def _steps_within_budget(self, new_turn: bool) -> None:
        clock = ChainClock()
        if new_turn:
            self._fence.new_turn()
        while (stepped := await self._one_step()) is not None:
            run, events = stepped
            if run.status == "requires_action" and run.deadline is not None:
                # Before the pause is committed: a deadline is never lost with its host.
                await self._effects.remind(
                    Reminder.deadline(run.run_id),
                    max(run.deadline - datetime.now(UTC), timedelta(0)),
                )
            if children_asked(run):  # so are the children it waits for
                every = timedelta(seconds=self._settings.child_run_check_seconds)
                await self._effects.remind(Reminder.children(run.run_id, every), every)
            self._watchdog.stepped(run)
            self._checkpoints.add(partial(self.publish, run, events))
            if run.status == "running":
                if clock.spent(self._budget):
                    await self._checkpoints.flush()
                    await self._effects.chain_step()
                    return
                continue
            await self._checkpoints.flush()
            record = await self._store.known_record()
            self._stopped(record, run)
            if run.status == "requires_action" or not await self._start_next(record):
                self._watchdog.stop(run.run_id)  # a waiting run holds only its deadline
            if children_asked(run):
                await self.children.ask(run.run_id)
            elif not run.active:
                await self.children.tell_parent(record, run)
            return

    async def _one_step(self) -> tuple[RunRecord, list[RunEvent]] | None:
        """Takes the active run's next step; None if there is none or it was discarded."""
        record = await self._store.record()
        run = await self._store.run(record.active_run) if record and record.active_run else None
        if record is None or run is None or run.status != "running":
            return None
        logs.run_id.set(run.run_id)
        lifecycle.step_started()
        started = time.perf_counter()
        followups = record.followups
        deltas = DeltaBatcher(self.thread_id, run.run_id, run.steps + 1, self._checkpoints.publish)
        check = self._fence.for_step(run.run_id, run.steps, run.next_seq)

        async def fenced() -> None:
            if not self._fence.fresh():  # a commit confirms, as a read does
                await self._checkpoints.flush()
            await check()
            await self._checkpoints.hold()  # the step's writes go in whole, or not at all

        try:
            try:
                run, events = await advance(
                    self._store,
                    record,
                    run,
                    self._engine,
                    fenced,
                    deltas,
                    partial(self.followups.owner_allows, record),
                    OwnerSpending(self._effects, record.owner),
                    self._effects.take_model_slots,
                    self._settings.model_concurrency,
                )
            finally:
                self._checkpoints.release()
        except (StaleStep, StepAborted, NoModelSlot) as thrown_away:
            # The steps before it stand (the step wrote nothing of its own yet).
            await self._checkpoints.flush()
            await self._effects.discard()
            self._forget_unsaved()
            if isinstance(thrown_away, NoModelSlot):  # woken when its slot comes
                self._watchdog.waiting_for_slot(RETRY_AFTER)
                return None
            lifecycle.steps_discarded += 1
            log.warning("thread %s: step discarded: %s", self.thread_id, thrown_away)
            return None
        finally:
            deltas.flush()
            lifecycle.step_finished()
        await self.followups.changed(followups, await self._store.record())
        metrics.observe(events, time.perf_counter() - started)
        for event in events:
            log.info("%s %s", event.type, event.data.get("status") or event.data.get("kind"))
        return run, events

    # --- the watchdog and reminders ------------------------------------------------------

    async def watchdog_fired(self, _: WatchdogFired) -> Done:
        """A run still running goes on (its chain may have died with its previous host);
        with none, the watchdog is not needed any more."""
        record = await self._store.record()
        run = await self._store.run(record.active_run) if record and record.active_run else None
        if run is not None and run.status == "running":
            await self._effects.chain_step()
        else:
            self._effects.unwatch()
        return Done()

    async def reminder(self, name: str, data: str) -> None:
        reminder = Reminder.fired(name, data)
        if reminder is None:  # of an older version: nothing of this one's
            return
        if reminder.kind == "followup":
            await self.followups.due(reminder.name.removeprefix(FOLLOWUP_PREFIX))
            return
        record = await self._store.record()
        run = await self._store.run(record.active_run) if record and record.active_run else None
        ours = record is not None and run is not None and run.run_id == reminder.data
        if reminder.kind == "deadline":
            if record is not None and run is not None and ours:
                await self._deadline_passed(record, run)
        elif reminder.kind == "children":
            if run is not None and ours and children_asked(run):
                await self.children.ask(run.run_id)
            else:
                await self._effects.forget(reminder)
        elif record is None:  # erase: its retention ran out, the store expires its keys
            await self._effects.leave_owner(reminder.data)
            log.info("thread expired: dropped from its owner's list")

    async def _deadline_passed(self, record: ThreadRecord, run: RunRecord) -> None:
        """Denies the approvals nobody gave in time; the run goes on unless it also waits
        for something else."""
        logs.run_id.set(run.run_id)
        record, events = await expire(self._store, record, run)
        if not events:
            return
        await self.commit()
        self.publish(run, events)
        self._effects.run_stopped(run.run_id)
        log.info("run %s: approval deadline passed, undecided calls denied", run.run_id)
        if run.status == "running":
            await self.running_again(record, run)

    async def running_again(self, record: ThreadRecord, run: RunRecord) -> None:
        """A waiting run runs again: its steps go on, watched, in a run slot again."""
        await self._effects.chain_step()
        self._effects.watch()
        self.slot(record.owner, taken=True)

    # --- what several calls share ------------------------------------------------------

    async def _begin(
        self, record: ThreadRecord, run: RunRecord, previous: list[RunEvent], chain: bool = True
    ) -> None:
        """Starts a queued run; its first steps follow in a later turn if `chain`, else
        in this call, which commits the start with them."""
        record, run, events = await begin(self._store, record, run, previous)
        if chain:
            await self.commit()
            self.publish(run, events)
        else:
            self._fence.confirmed()
            self._checkpoints.add(partial(self.publish, run, events))
        metrics.observe(events, 0.0)
        log.info(
            "run %s started with %s (agent %s v%d)",
            run.run_id,
            run.agent.model,
            run.agent.name,
            run.agent.version,
        )
        self._watchdog.start(run.run_id, now=chain, unseen=True)
        if chain:
            await self._effects.chain_step()

    async def _start_next(self, record: ThreadRecord) -> bool:
        """Starts the oldest queued run, if any and no run is active; True if it did."""
        if record.active_run is not None or not record.queue:
            return False
        run = await self._store.run(record.queue[0])
        if run is None:  # cannot happen: queued runs are written with the queue
            return False
        logs.run_id.set(run.run_id)
        await self._begin(record, run, [])
        # The slot the run before it handed back is this thread's again.
        self.slot(record.owner, taken=True)
        return True

    async def _cancel(self, record: ThreadRecord, run_id: str, reason: str) -> ThreadRecord:
        run = await self._store.known_run(run_id)
        had_deadline = run.deadline is not None
        was_running = run.status != "requires_action"  # a waiting run holds no slot
        record, events = await cancel(self._store, record, run, reason)
        await self.commit()
        if had_deadline:  # in this turn: a later pause may register a deadline of its own
            await self._effects.forget(Reminder.deadline(run_id))
        if was_running:
            self._stopped(record, run)
        else:
            self._effects.run_stopped(run_id)
        self.publish(run, events)
        metrics.observe(events, 0.0)
        log.info("run %s cancelled: %s", run_id, reason)
        await self.children.tell_parent(record, run)
        return record

    def _stopped(self, record: ThreadRecord, run: RunRecord) -> None:
        """The run stopped running (ended, or waits): its waiters wake, and the owner's
        concurrent-run slot is handed back (the gateway takes it when it admits a message
        or a resume; a waiting run holds none)."""
        self._effects.run_stopped(run.run_id)
        self.slot(record.owner, taken=False)

    def slot(self, owner: str, taken: bool) -> None:
        """Takes or hands back one of the owner's concurrent-run slots (with a bound)."""
        if self._settings.max_concurrent_runs:
            if taken:
                self._effects.tell_owner(owner, Admit(run=True, thread_id=self.thread_id))
            else:
                self._effects.tell_owner(owner, RunEnded(thread_id=self.thread_id))

    async def commit(self) -> None:
        """Saves the turn's writes. What was just committed is what the store holds: the
        fence may trust it for the chain budget, as it trusts a read. A commit that
        renewed the thread's retention moves its erase reminder to the keys' new expiry."""
        announcements = await self._announcements.before_commit()
        await self._effects.commit()
        self.followups.committed()
        if announcements:
            self._effects.announce(announcements, self._announcements.handed_out(announcements))
        self._fence.confirmed()
        await self._watchdog.committed()
        await self._status.committed()
        if (renewal := self._store.take_renewal()) is not None:
            owner, seconds = renewal
            await self._effects.remind(Reminder.erase(owner), timedelta(seconds=seconds))

    def _forget_unsaved(self) -> None:
        """The turn's writes were thrown away: what they would have announced too."""
        self._store.forget_unsaved()
        self._announcements.forget_unsaved()

    def publish(self, run: RunRecord, events: list[RunEvent]) -> None:
        """The run's new events to the gateways' streams (its transitions go to other
        services and webhooks with the commit that saved them: `_commit`)."""
        self._to_gateways(
            StepEventsMessage(thread_id=self.thread_id, run_id=run.run_id, events=events)
        )

    def _to_gateways(self, message: RunMessage) -> None:
        """A run's events or text for the gateways' streams and waiting requests.

        A run that started inside its caller's call and stopped there is committed whole,
        start and end in one transaction: nobody saw it before it stopped, so no stream
        follows it and no request waits for it (its caller has the answer). Its events
        stay in its log, where a stream opened later reads them; publishing them would be
        a publish and a delivery to every gateway replica that nobody reads."""
        if not self._watchdog.unseen(message):
            self._effects.publish(message)


def _remember(record: ThreadRecord, key: str, run_id: str) -> ThreadRecord:
    """Keeps the key: the latest IDEMPOTENCY_KEYS callers' keys, and of the gateway's
    own keys only the latest few."""
    kept = list(record.idempotency.items())
    if key.startswith(GATEWAY_KEY_PREFIX):
        gateway = [k for k, _ in kept if k.startswith(GATEWAY_KEY_PREFIX)]
        stale = set(gateway[: max(len(gateway) - (GATEWAY_KEYS - 1), 0)])
        kept = [(k, v) for k, v in kept if k not in stale]
    kept = kept[-(IDEMPOTENCY_KEYS - 1) :]
    return record.model_copy(update={"idempotency": {**dict(kept), key: run_id}})
