"""The thread service's effects, carried out on Dapr for one Thread actor (what touches
the SDK's internals to do so is actors/dapr_host/sdk.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import aiohttp
from dapr.actor import Actor
from dapr.clients.exceptions import DaprInternalError

from actors.dapr_host import background, sdk
from actors.dapr_host.model_gate import process_gates
from actors.dapr_host.status_batches import process_batches
from actors.dapr_host.watchdog import clear_watchdog, set_watchdog
from actors.engine.quotas import QuotaRefusal
from actors.threads.announcements import Announcement, Sent
from actors.threads.contract import (
    THREAD_ACTOR,
    ChildRunAnswer,
    ChildRunEnded,
    Invalid,
    NotFound,
    StartChildRun,
)
from actors.threads.effects import ChildUnreachable
from actors.threads.owner_contract import (
    OWNER_ACTOR,
    Admit,
    Answer,
    OwnerRequest,
    RemoveThread,
    RunEnded,
    StatusChange,
    owner_actor_id,
)
from actors.threads.reminders import Reminder
from actors.threads.run_events import PUBLISH_LINGER, EventOutbox, RunMessage
from actors.threads.state import announcement_key
from threadhost.common.run_signals import run_changed
from threadhost.common.settings import Settings
from threadhost.common.sidecar import shared_actor_client
from threadhost.common.usage_ledger import process_ledger

STEP_TIMER = "step"
# A child run is started inside the parent's turn: its call makes the thread and queues
# the run, no step. Bounded, so a child host that hangs does not hold the parent's lock.
CHILD_START_SECONDS = 15.0
log = logging.getLogger(__name__)


class ActorEffects:
    def __init__(self, actor: Actor, settings: Settings, take_step: Callable[[Any], Any]) -> None:
        self._actor, self._settings, self._take_step = actor, settings, take_step
        self._thread_id = actor.id.id
        self._outbox = EventOutbox(
            self._send,
            self._in_background,
            min(settings.step_chain_budget_ms / 1000, PUBLISH_LINGER),
        )

    async def commit(self) -> None:
        await sdk.commit(self._actor)

    async def discard(self) -> None:
        await sdk.discard(self._actor)

    async def read_committed(self, key: str) -> tuple[bool, Any]:
        return await sdk.read_committed(self._actor, key)

    def publish(self, message: RunMessage) -> None:
        self._outbox.add(message)

    def announce(self, announcements: list[Announcement], went: Sent) -> None:
        settings = self._settings
        # Committed: the state manager need not keep their documents for this activation.
        sdk.forget_cached(self._actor, [announcement_key(a.event.id) for a in announcements])
        client = shared_actor_client()
        failed: set[str] = set()

        async def publish(event_id: str, topic: str, body: bytes, kind: str) -> None:
            try:  # a sidecar that restarts loses no event; one still down: sent again later
                await _retried(
                    lambda: client.publish(settings.thread_events_pubsub, topic, body, kind)
                )
            except (DaprInternalError, aiohttp.ClientError, TimeoutError) as exc:
                failed.add(event_id)
                log.warning(
                    "%s of event %s not published (%s): sent again later",
                    topic,
                    event_id,
                    type(exc).__name__,
                )

        async def events() -> None:  # in order, each on its own
            for a in announcements if settings.thread_events_topic else []:
                await publish(
                    a.event.id,
                    settings.thread_events_topic,
                    a.event.model_dump_json().encode(),
                    "application/cloudevents+json",
                )

        async def webhooks() -> None:
            for a in announcements:
                for delivery in a.deliveries:
                    await publish(
                        a.event.id,
                        settings.webhooks_topic,
                        delivery.model_dump_json().encode(),
                        "application/json",
                    )

        async def send() -> None:
            await asyncio.gather(events(), webhooks())
            sent = [a.event.id for a in announcements if a.event.id not in failed]
            try:
                await client.delete_actor_state(
                    THREAD_ACTOR, self._thread_id, [announcement_key(i) for i in sent]
                )
            except (DaprInternalError, aiohttp.ClientError, TimeoutError) as exc:
                # Listed and stored still: sent again at the next activation (same ids).
                log.warning("sent announcements not removed (%s)", type(exc).__name__)
                sent = []
            went(sent, sorted(failed))

        # A lane of their own, in order: a topic that is slow or refuses (each publish is
        # tried for about four seconds) holds back neither the watchdog's registration nor
        # the run's events to the gateways, which go in the thread's own lane.
        background.in_order(f"{self._thread_id}#announcements", send())

    def flush_events(self, text_of_ended_steps: bool = True) -> None:
        self._outbox.flush(text_of_ended_steps)

    async def _send(self, message: RunMessage) -> None:
        await shared_actor_client().publish(
            self._settings.pubsub_name,
            self._settings.events_topic,
            message.model_dump_json().encode(),
        )

    async def chain_step(self, after: timedelta = timedelta(0)) -> None:
        await self._actor.register_timer(STEP_TIMER, self._take_step, None, after, timedelta(0))

    async def take_model_slots(self, bounds: list[str], ticket: str) -> Callable[[], None] | None:
        return await process_gates(self._settings).take(bounds, ticket, self.chain_step)

    def watch(self, every: timedelta | None = None) -> None:
        seconds = every.total_seconds() if every else self._settings.run_watchdog_seconds
        _watchdog_calls(
            self._thread_id, set_watchdog(shared_actor_client(), self._thread_id, seconds)
        )

    async def watched(self) -> None:
        registered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        seconds = self._settings.run_watchdog_seconds

        async def register() -> None:
            try:
                await _retried(
                    lambda: set_watchdog(shared_actor_client(), self._thread_id, seconds)
                )
            except BaseException as exc:
                registered.set_exception(exc)
                raise
            registered.set_result(None)

        _watchdog_calls(self._thread_id, register())  # in order with the thread's watchdog calls
        await registered

    def unwatch(self) -> None:
        _watchdog_calls(self._thread_id, clear_watchdog(shared_actor_client(), self._thread_id))

    async def remind(self, reminder: Reminder, due: timedelta) -> None:
        work = self._actor.register_reminder(
            reminder.name, reminder.data.encode(), due, reminder.every
        )
        if reminder.registered_off_path:
            self._in_background(work)
        else:
            await work

    async def forget(self, reminder: Reminder) -> None:
        work = self._actor.unregister_reminder(reminder.name)
        if reminder.dropped_off_path:
            self._in_background(work)
        else:
            await work

    async def ask_owner(self, owner: str, request: OwnerRequest[Answer]) -> Answer:
        return await _ask_owner(owner, request)

    def tell_owner(self, owner: str, request: OwnerRequest[Answer]) -> None:
        if isinstance(request, RunEnded):
            self._in_background(_slot_back(self._thread_id, owner, request))
        elif isinstance(request, Admit):
            self._in_background(_retried(lambda: _ask_owner(owner, request)))
        else:
            self._in_background(self.ask_owner(owner, request))

    def spend(self, owner: str, tokens: int, cost_usd: float) -> None:
        process_ledger(self._settings).spend(owner, tokens, cost_usd)

    async def quota_refusal(self, owner: str) -> QuotaRefusal | None:
        return await process_ledger(self._settings).refusal(owner)

    def status_changed(self, owner: str, change: StatusChange) -> None:
        process_batches(_ask_owner).add(owner, change)

    async def leave_owner(self, owner: str) -> None:
        # A run slot on its way back may carry the thread's last state change.
        await background.settled(self._thread_id)
        await process_batches(_ask_owner).forget(owner, self._thread_id)
        await _ask_owner(owner, RemoveThread(thread_id=self._thread_id))

    def run_stopped(self, run_id: str) -> None:
        run_changed(run_id)

    async def start_child(
        self,
        thread_id: str,
        request: StartChildRun,
    ) -> ChildRunAnswer | Invalid | NotFound:
        try:
            raw = await shared_actor_client().invoke_method(
                THREAD_ACTOR,
                thread_id,
                request.method,
                request.model_dump_json().encode(),
                limit_seconds=CHILD_START_SECONDS,
            )
        except (DaprInternalError, aiohttp.ClientError, TimeoutError) as exc:
            raise ChildUnreachable(type(exc).__name__) from exc
        return request.answers.validate_json(raw)

    def tell_parent(self, thread_id: str, request: ChildRunEnded) -> None:
        async def tell() -> None:
            try:
                await shared_actor_client().invoke_method(
                    THREAD_ACTOR, thread_id, request.method, request.model_dump_json().encode()
                )
            except (DaprInternalError, aiohttp.ClientError, TimeoutError) as exc:
                # The parent's own check asks this thread for the run at its next period.
                log.warning(
                    "parent thread %s not told of run %s (%s)",
                    thread_id,
                    request.child.run_id,
                    type(exc).__name__,
                )

        self._in_background(tell())

    def _in_background(self, work: Any) -> None:
        background.in_order(self._thread_id, work)


def _watchdog_calls(thread_id: str, work: Any) -> None:
    """The watchdog's calls, in order among themselves (a late removal must not undo a
    later registration) but not queued behind the thread's other sidecar calls: a run's
    watchdog lands within milliseconds of its start even while a publication is being
    retried (on a real cluster one waited behind four seconds of retries, and its host's
    sidecar went first)."""
    background.in_order(f"{thread_id}/watchdog", work)


async def _slot_back(thread_id: str, owner: str, request: RunEnded) -> None:
    """Hands the thread's run slot back with its state change that waits to be told (put
    back in the batch if the call fails), tried a few times: the Owner may be moving
    between hosts, and a slot call is safe to repeat."""
    batches = process_batches(_ask_owner)
    changes = batches.take(owner, thread_id)
    try:
        await _retried(lambda: _ask_owner(owner, request.model_copy(update={"changes": changes})))
    except BaseException:
        for change in changes:
            batches.add(owner, change)
        raise


async def _ask_owner(owner: str, request: OwnerRequest[Answer]) -> Answer:
    raw = await shared_actor_client().invoke_method(
        OWNER_ACTOR, owner_actor_id(owner), request.method, request.model_dump_json().encode()
    )
    return request.read_answer(raw)


T = TypeVar("T")


async def _retried(call: Callable[[], Awaitable[T]], attempts: int = 4) -> T:
    """A call tried a few times over about four seconds, for calls safe to repeat."""
    for attempt in range(attempts):
        try:
            return await call()
        except (DaprInternalError, aiohttp.ClientError, TimeoutError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.2 * 4**attempt)
    raise AssertionError("unreachable")
