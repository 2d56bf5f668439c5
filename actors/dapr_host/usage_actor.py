"""The Usage actor: one per scope and period (threadhost/common/usage_ledger.py), the
running total of what that scope spent in it. Each process hands it what it counted
about once a second; its state expires a while after its period ends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dapr.actor import Actor, ActorInterface, actormethod

from actors.engine.quotas import Used

Payload = dict[str, Any]
# Kept past its period (a month at most), so /v1/usage can still show it a while.
KEPT = timedelta(days=40)


class UsageInterface(ActorInterface):
    @actormethod(name="Add")
    async def add(self, spent: Payload) -> Payload: ...

    @actormethod(name="Read")
    async def read(self, _: Payload) -> Payload: ...


class Usage(Actor, UsageInterface):
    """Registered as actor type `Usage`."""

    async def _used(self) -> Used:
        found, value = await self._state_manager.try_get_state("used")
        return Used.model_validate(value) if found else Used()

    async def add(self, spent: Payload) -> Payload:
        used = (await self._used()).plus(Used.model_validate(spent))
        await self._state_manager.set_state_ttl(
            "used", used.model_dump(), int(KEPT.total_seconds())
        )
        await self._state_manager.save_state()
        return used.model_dump()

    async def read(self, _: Payload) -> Payload:
        return (await self._used()).model_dump()
