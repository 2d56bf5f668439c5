"""The Thread actor: loads a thread's state, lets the engine take a step, saves the result.

A run advances in steps, each committed as a checkpoint and then published. The first is
chained from PostMessage by an in-memory actor timer; quick steps follow in the same turn
within a small budget, and the step that crosses it hands over to the next turn by the
timer, so the lock is free between slow steps. A durable reminder per active run (the
watchdog) restarts a run whose chain was lost with its host; so does the thread's next
activation.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from dapr.actor import Actor, ActorId, ActorProxy, Remindable
from pydantic import ValidationError

from actors import background, metrics
from actors.cancellation import StepAborted
from actors.engine.agents import UnknownAgent
from actors.engine.pauses import InvalidSubmission, NotWaiting, submissions_adapter
from actors.engine.recipes import UnknownRecipe
from actors.engine.run import RunEvent, RunRecord
from actors.engine.tool_set import ToolSetError, client_tools_adapter
from actors.engine_setup import load_engine
from actors.fence import Fence
from actors.interface import Payload, ThreadActorInterface
from actors.lifecycle import lifecycle
from actors.owner_actor import OWNER_ACTOR_TYPE, OwnerInterface, owner_actor_id
from actors.run_events import DeltaBatcher, step_events
from actors.run_steps import (
    Engine,
    StaleStep,
    advance,
    begin,
    cancel,
    enqueue,
    expire,
    resume,
)
from actors.state import IDEMPOTENCY_KEYS, ThreadRecord
from actors.thread_reads import ThreadReads
from actors.thread_store import ThreadStore
from actors.views import NOT_FOUND, describe, invalid, run_not_found, run_view
from threadhost import logs
from threadhost.actor_client import shared_actor_client
from threadhost.run_signals import run_changed
from threadhost.settings import get_settings
from threadhost.state_serializer import PlainJSONSerializer

log = logging.getLogger(__name__)

STEP_TIMER, WATCHDOG, DEADLINE, ERASE = "step", "watchdog", "deadline", "erase"


class Thread(Actor, ThreadReads, ThreadActorInterface, Remindable):
    """Registered as actor type `Thread` (the SDK names a type after its class)."""

    def __init__(self, ctx: Any, actor_id: Any) -> None:
        super().__init__(ctx, actor_id)
        self._settings = get_settings()
        self._engine: Engine  # set at activation, which comes before any call
        self._store = ThreadStore(self._state_manager)
        self._fence = Fence(self._read_committed, self._settings.step_chain_budget_ms / 1000)

    async def _on_activate(self) -> None:
        self._engine = await load_engine()
        lifecycle.activated(self.id.id)
        metrics.ACTIVE_ACTORS.inc()
        record = await self._store.record()
        if record is not None and record.active_run is not None:
            run = await self._store.run(record.active_run)
            if run is not None and run.status == "running":
                await self._chain_step()  # its previous host may have died mid-run
        elif record is not None:
            await self._start_next(record)  # a run queued behind one that ended

    async def _on_pre_actor_method(self, method_context: Any) -> None:
        logs.thread_id.set(self.id.id)
        logs.run_id.set(None)

    async def _on_deactivate(self) -> None:
        lifecycle.deactivated(self.id.id)
        metrics.ACTIVE_ACTORS.dec()

    async def create(self, request: Payload) -> Payload:
        agent = request.get("agent") or self._settings.default_agent
        try:
            definition = self._engine.catalog.current(agent)
        except UnknownAgent:
            return invalid(f"no agent named {agent!r}")
        record = await self._store.record()
        if record is None:
            record = ThreadRecord(thread_id=self.id.id, page_size=self._settings.history_page_size,
                                  metadata=request.get("metadata") or {}, agent=agent,
                                  owner=str(request.get("owner", "anonymous")),
                                  retention_seconds=definition.retention_seconds)
            await self._store.save_record(record)
            await self._commit()
        elif record.owner != request.get("owner", "anonymous"):
            return NOT_FOUND
        return {"status": "ok", "thread": describe(record)}

    async def post_message(self, request: Payload) -> Payload:
        """Starts a run with the message. While another run is active, `on_active` says
        what happens: enqueue (the default: it runs next), reject, or interrupt (the active
        run is cancelled). A repeated `idempotency_key` returns the first run instead."""
        text, on_active = request.get("text"), request.get("on_active", "enqueue")
        if not isinstance(text, str) or not text.strip():
            # Callers other than the gateway reach this method too.
            return invalid("text must be a non-blank string")
        if on_active not in ("enqueue", "reject", "interrupt"):
            return invalid("on_active must be enqueue, reject or interrupt")
        record = await self._owned(request)
        if record is None:
            return NOT_FOUND
        key = request.get("idempotency_key")
        if key and key in record.idempotency:
            run = await self._store.run(record.idempotency[key])
            return {"status": "ok", "thread": describe(record), "run": run_view(run),
                    "replayed": True}
        if record.active_run is not None and on_active == "reject":
            return {"status": "busy", "run_id": record.active_run}
        try:
            agent = self._engine.agent(record.agent, request.get("model"))
            tools = self._engine.tool_set(
                agent, client_tools_adapter.validate_python(request.get("client_tools") or []),
                disabled=list(request.get("disabled_tools") or []))
        except (UnknownAgent, UnknownRecipe, ToolSetError) as exc:
            return invalid(str(exc))
        except ValidationError as exc:
            return invalid(f"client_tools: {exc.errors()[0]['msg']}")
        if record.active_run is not None and on_active == "interrupt":
            record = await self._cancel(record, record.active_run, "interrupted by a new message")
        record, run, events = await enqueue(self._store, record, text,
                                            f"run_{uuid.uuid4().hex}", agent, tools)
        if key:
            kept = list(record.idempotency.items())[-(IDEMPOTENCY_KEYS - 1):]
            record = record.model_copy(update={"idempotency": {**dict(kept), key: run.run_id}})
            await self._store.save_record(record)
        logs.run_id.set(run.run_id)
        if record.active_run is None:
            record, run = await self._begin(record, run, events)
        else:
            await self._commit()
            self._publish(run, events)
            metrics.observe(events, 0.0)
        return {"status": "ok", "thread": describe(record), "run": run_view(run)}

    async def delete(self, request: Payload) -> Payload:
        """Removes every piece of the thread's state; a run going on is cancelled first."""
        record = await self._owned(request)
        if record is None:
            return NOT_FOUND
        for run_id in [*([record.active_run] if record.active_run else []), *record.queue]:
            record = await self._cancel(record, run_id, "the thread was deleted")
        await self._store.delete_all(record)
        self._in_background(self._unwatch())
        if record.retention_seconds is not None:
            self._in_background(self.unregister_reminder(ERASE))
        log.info("thread deleted")
        return {"status": "ok"}

    async def cancel_run(self, request: Payload) -> Payload:
        """Cancels an active or queued run; a step in progress ends first (the lock)."""
        record = await self._owned(request)
        if record is None:
            return NOT_FOUND
        run = await self._store.run(run_id := str(request.get("run_id", "")))
        if run is None:
            return run_not_found(run_id)
        if run.active:
            record = await self._cancel(record, run.run_id, "cancelled by the caller")
            await self._start_next(record)
            run = await self._store.run(run.run_id)
        return {"status": "ok", "run": run_view(run)}

    @staticmethod
    def _owner(owner: str) -> ActorProxy:
        return ActorProxy(shared_actor_client(), OWNER_ACTOR_TYPE, ActorId(owner_actor_id(owner)),
                          OwnerInterface, PlainJSONSerializer())

    def _run_ended(self, record: ThreadRecord) -> None:
        """Frees the owner's concurrent-run slot (counted by the Owner actor; the gateway
        takes one when a message or a resume is admitted)."""
        if self._settings.max_concurrent_runs:
            self._in_background(self._owner(record.owner).RunEnded({}))

    async def _cancel(self, record: ThreadRecord, run_id: str, reason: str) -> ThreadRecord:
        run = await self._store.run(run_id)
        had_deadline, held_slot = run.deadline is not None, run.status != "requires_action"
        record, events = await cancel(self._store, record, run, reason)
        await self._commit()
        if had_deadline:  # in this turn: a later pause may register a deadline of its own
            await self._forget_deadline()
        if held_slot:
            self._run_ended(record)
        self._publish(run, events)
        metrics.observe(events, 0.0)
        run_changed(run_id)
        log.info("run %s cancelled: %s", run_id, reason)
        return record

    async def _begin(self, record: ThreadRecord, run: RunRecord,
                     previous: list[RunEvent] = ()) -> tuple[ThreadRecord, RunRecord]:
        """Starts a queued run and chains its first step."""
        record, run, events = await begin(self._store, record, run, list(previous))
        await self._commit()
        self._publish(run, events)
        metrics.observe(events, 0.0)
        log.info("run %s started with %s (agent %s v%d)", run.run_id, run.agent.model,
                 run.agent.name, run.agent.version)
        await self._chain_step()
        self._in_background(self._watch())
        return record, run

    async def _start_next(self, record: ThreadRecord) -> bool:
        """Starts the oldest queued run, if any and no run is active."""
        if record.active_run is not None or not record.queue:
            return False
        run = await self._store.run(record.queue[0])
        if run is None:  # cannot happen: queued runs are written with the queue
            return False
        logs.run_id.set(run.run_id)
        await self._begin(record, run)
        return True

    async def resume_run(self, request: Payload) -> Payload:
        """Answers what a waiting run waits for (`actions`: tool results, approvals,
        answers); the run goes on from any host. A submission that does not answer every
        pending call exactly once, or comes when the run is not waiting, changes nothing."""
        record = await self._owned(request)
        if record is None:
            return NOT_FOUND
        run = await self._store.run(run_id := str(request.get("run_id", "")))
        if run is None:
            return run_not_found(run_id)
        logs.run_id.set(run.run_id)
        had_deadline = run.deadline is not None
        try:
            submissions = submissions_adapter.validate_python(request.get("actions"))
            record, events = await resume(self._store, record, run, submissions)
        except ValidationError as exc:
            return invalid(f"actions: {exc.errors()[0]['msg']}")
        except InvalidSubmission as exc:
            return invalid(str(exc))
        except NotWaiting as exc:
            return {"status": "conflict", "detail": str(exc)}
        await self._commit()
        if had_deadline:  # in this turn, before its next step can pause with a new one
            await self._forget_deadline()
        self._publish(run, events)
        metrics.observe(events, 0.0)
        run_changed(run.run_id)
        log.info("run %s resumed", run.run_id)
        await self._chain_step()
        self._in_background(self._watch())
        return {"status": "ok", "run": run_view(run), "first_seq": events[0].seq}

    async def take_step(self, _: Any = None) -> None:
        """The step timer's callback: steps of the active run, each committed and published.

        Steps that finish quickly (a local tool batch, a scripted model) go on in this
        turn while it is within its budget; the step that crosses the budget hands over
        to the next turn through the timer, so the lock is never held past one slow step.
        """
        deadline = time.monotonic() + self._settings.step_chain_budget_ms / 1000
        self._fence.new_turn()
        while (stepped := await self._one_step()) is not None:
            run, events = stepped
            if run.status == "requires_action" and run.deadline is not None:
                # Before the pause is committed: a deadline is never lost with its host.
                await self._remind_deadline(run)
            await self._commit()
            self._publish(run, events)
            if run.status == "requires_action":
                run_changed(run.run_id)
                self._in_background(self._unwatch())  # it holds no reminder but its deadline
                self._run_ended(await self._store.record())  # nor a run slot: it waits
                return
            if run.status != "running":
                run_changed(run.run_id)
                record = await self._store.record()
                self._run_ended(record)
                if not await self._start_next(record):
                    self._in_background(self._unwatch())
                return
            if time.monotonic() >= deadline:
                await self._chain_step()
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
        deltas = DeltaBatcher(self.id.id, run.run_id, run.steps + 1, self._publish_raw)
        try:
            run, events = await advance(self._store, record, run, self._engine,
                                        self._fence.for_step(run.run_id, run.steps,
                                                             run.next_seq),
                                        deltas)
        except (StaleStep, StepAborted) as thrown_away:
            await self._state_manager.clear_cache()
            self._store.forget_unsaved()
            lifecycle.steps_discarded += 1
            log.warning("thread %s: step discarded: %s", self.id.id, thrown_away)
            return None
        finally:
            deltas.flush()
            lifecycle.step_finished()
        metrics.observe(events, time.perf_counter() - started)
        for event in events:
            log.info("%s %s", event.type, event.data.get("status") or event.data.get("kind"))
        return run, events

    def _publish(self, run: RunRecord, events: list[RunEvent]) -> None:
        self._publish_raw(step_events(self.id.id, run.run_id, events))

    def _publish_raw(self, data: bytes) -> None:
        """In order per thread, off the turn's critical path; a lost message is refilled
        by subscribers from the run's stored events."""
        self._in_background(shared_actor_client().publish(
            self._settings.pubsub_name, self._settings.events_topic, data))

    async def receive_reminder(self, name: str, state: bytes, due_time: timedelta,
                               period: timedelta, ttl: timedelta | None = None) -> None:
        record = await self._store.record()
        run = await self._store.run(record.active_run) if record and record.active_run else None
        if name == DEADLINE:
            if run is not None and run.run_id == state.decode():
                await self._deadline_passed(record, run)
        elif name == ERASE:
            if record is None:  # its retention ran out: the store is expiring its keys
                await self._owner(state.decode()).RemoveThread({"thread_id": self.id.id})
                log.info("thread expired: dropped from its owner's list")
        elif name == WATCHDOG:
            if run is not None and run.status == "running":
                await self._chain_step()
            else:
                await self._unwatch()

    async def _deadline_passed(self, record: ThreadRecord, run: RunRecord) -> None:
        """Denies the approvals nobody gave in time; the run goes on unless it also waits
        for something else."""
        logs.run_id.set(run.run_id)
        record, events = await expire(self._store, record, run)
        if not events:
            return
        await self._commit()
        self._publish(run, events)
        run_changed(run.run_id)
        log.info("run %s: approval deadline passed, undecided calls denied", run.run_id)
        if run.status == "running":
            await self._chain_step()
            self._in_background(self._watch())
            if self._settings.max_concurrent_runs:  # it runs again: it takes a slot again
                self._in_background(self._owner(record.owner).Admit({"run": True}))

    async def _commit(self) -> None:
        """Saves the turn's writes. When they renewed the thread's retention, its erase
        reminder moves to when the renewed keys expire: then the owner's list forgets it."""
        await self._state_manager.save_state()
        if (renewal := self._store.take_renewal()) is not None:
            owner, seconds = renewal
            self._in_background(self.register_reminder(
                ERASE, owner.encode(), timedelta(seconds=seconds), None))

    async def _read_committed(self, key: str) -> tuple[bool, Any]:
        """A key as committed in the store now, past the state manager's cache."""
        return await self._runtime_ctx.state_provider.try_load_state(
            self._runtime_ctx.actor_type_info.type_name, self.id.id, key)

    async def _chain_step(self) -> None:
        await self.register_timer(STEP_TIMER, self.take_step, None, timedelta(0),
                                  timedelta(0))

    async def _watch(self) -> None:
        period = timedelta(seconds=self._settings.run_watchdog_seconds)
        await self.register_reminder(WATCHDOG, b"", period, period)

    async def _unwatch(self) -> None:
        await self.unregister_reminder(WATCHDOG)

    async def _remind_deadline(self, run: RunRecord) -> None:
        due = max(run.deadline - datetime.now(UTC), timedelta(0))
        await self.register_reminder(DEADLINE, run.run_id.encode(), due, None)

    async def _forget_deadline(self) -> None:
        await self.unregister_reminder(DEADLINE)

    def _in_background(self, work: Any) -> None:
        background.in_order(self.id.id, work)
