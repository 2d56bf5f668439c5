"""The Thread actor: a thin adapter between Dapr and the thread service.

Each method reads its request as the contract says (actors/threads/contract.py), hands it to the
service (actors/threads/service.py) and answers with what the service decided; the effects
the service asks for are carried out on Dapr by actors/dapr_host/effects.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from dapr.actor import Actor, Remindable
from pydantic import BaseModel, ValidationError

from actors.dapr_host.committed import committed_store
from actors.dapr_host.effects import ActorEffects
from actors.dapr_host.engine_setup import load_engine
from actors.dapr_host.interface import Payload, ThreadActorInterface
from actors.dapr_host.sdk import UncheckedWrites
from actors.threads import metrics
from actors.threads.contract import (
    CancelFollowup,
    CancelRun,
    ChildRunEnded,
    ConfigurePush,
    CreateThread,
    DeleteThread,
    DescribeThread,
    ForkThread,
    GetRun,
    ImportHistory,
    Invalid,
    ListFollowups,
    ListRuns,
    PostMessage,
    ReadHistory,
    Request,
    ResumeRun,
    ScheduleFollowup,
    StartChildRun,
    WatchdogFired,
    validation_detail,
)
from actors.threads.lifecycle import lifecycle
from actors.threads.service import ThreadService
from actors.threads.store import ThreadStore
from threadhost.common import logs
from threadhost.common.settings import get_settings
from threadhost.common.sidecar import shared_actor_client

Asked = TypeVar("Asked", bound=Request)
# Before the watchdog was a job of the app (actors/dapr_host/watchdog.py), it was this reminder: one
# that a running run of an older version left behind is replaced when it fires.
OLD_WATCHDOG_REMINDER = "watchdog"


class Thread(Actor, ThreadActorInterface, Remindable):
    """Registered as actor type `Thread` (the SDK names a type after its class)."""

    def __init__(self, ctx: Any, actor_id: Any) -> None:
        super().__init__(ctx, actor_id)
        self._store = ThreadStore(UncheckedWrites(self._state_manager))
        self._service: ThreadService  # set at activation, which comes before any call

    async def _on_activate(self) -> None:
        settings = get_settings()
        self._effects = ActorEffects(self, settings, self.take_step)
        self._service = ThreadService(
            self.id.id, self._store, await load_engine(), self._effects, settings
        )
        lifecycle.activated(self.id.id)
        metrics.ACTIVE_ACTORS.inc()
        await self._service.activated()

    async def _on_pre_actor_method(self, method_context: Any) -> None:
        logs.thread_id.set(self.id.id)
        logs.run_id.set(None)

    async def _on_deactivate(self) -> None:
        lifecycle.deactivated(self.id.id)
        metrics.ACTIVE_ACTORS.dec()

    async def create(self, request: Payload) -> Payload:
        return await serve(CreateThread, request, self._service.create)

    async def fork(self, request: Payload) -> Payload:
        async def forked(fork: ForkThread) -> Any:
            source = committed_store(shared_actor_client(), fork.source)
            return await self._service.forks.fork(fork, source)

        return await serve(ForkThread, request, forked)

    async def configure_push(self, request: Payload) -> Payload:
        return await serve(ConfigurePush, request, self._service.push.configure)

    async def describe(self, request: Payload) -> Payload:
        return await serve(DescribeThread, request, self._service.reads.describe)

    async def post_message(self, request: Payload) -> Payload:
        return await serve(PostMessage, request, self._service.post_message)

    async def resume_run(self, request: Payload) -> Payload:
        return await serve(ResumeRun, request, self._service.resume_run)

    async def cancel_run(self, request: Payload) -> Payload:
        return await serve(CancelRun, request, self._service.cancel_run)

    async def get_run(self, request: Payload) -> Payload:
        return await serve(GetRun, request, self._service.reads.get_run)

    async def list_runs(self, request: Payload) -> Payload:
        return await serve(ListRuns, request, self._service.reads.list_runs)

    async def read_history(self, request: Payload) -> Payload:
        return await serve(ReadHistory, request, self._service.reads.read_history)

    async def delete(self, request: Payload) -> Payload:
        return await serve(DeleteThread, request, self._service.delete)

    async def import_history(self, request: Payload) -> Payload:
        return await serve(ImportHistory, request, self._service.import_history)

    async def schedule_followup(self, request: Payload) -> Payload:
        return await serve(ScheduleFollowup, request, self._service.followups.schedule_followup)

    async def list_followups(self, request: Payload) -> Payload:
        return await serve(ListFollowups, request, self._service.followups.list_followups)

    async def cancel_followup(self, request: Payload) -> Payload:
        return await serve(CancelFollowup, request, self._service.followups.cancel_followup)

    async def start_child_run(self, request: Payload) -> Payload:
        return await serve(StartChildRun, request, self._service.children.start_child_run)

    async def child_run_ended(self, request: Payload) -> Payload:
        return await serve(ChildRunEnded, request, self._service.children.child_run_ended)

    async def take_step(self, _: Any = None) -> None:
        """The step timer's callback: the active run's next steps."""
        await self._service.take_steps()

    async def watchdog_fired(self, request: Payload) -> Payload:
        return await serve(WatchdogFired, request, self._service.watchdog_fired)

    async def receive_reminder(
        self,
        name: str,
        state: bytes,
        due_time: timedelta,
        period: timedelta,
        ttl: timedelta | None = None,
    ) -> None:
        if name == OLD_WATCHDOG_REMINDER:
            await self.unregister_reminder(name)
            self._effects.watch()  # the firing clears it again if no run is running
            await self._service.watchdog_fired(WatchdogFired())
            return
        await self._service.reminder(name, state.decode())


async def serve(
    kind: type[Asked], payload: Payload, handler: Callable[[Asked], Awaitable[BaseModel]]
) -> Payload:
    """The request as the contract reads it (callers other than the gateway reach these
    methods too: a request that does not match is Invalid), and the answer as JSON."""
    try:
        request = kind.model_validate(payload)
    except ValidationError as exc:
        return Invalid(detail=validation_detail(exc)).model_dump(mode="json")
    return (await handler(request)).model_dump(mode="json")
