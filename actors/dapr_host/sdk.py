"""The one module that reaches into the Python SDK's internals: an actor's state manager
and its cache of the turn's writes, and its runtime context's state provider.

Each use is here because the SDK's public surface has no way to do it: writing a key
without reading it first, reading a key past the turn's cache (the fence), and dropping
committed documents from the cache. An SDK upgrade that moves these breaks this module
alone (its tests: tests/test_thread_service.py in memory, every runtime test on Dapr).
"""

from __future__ import annotations

from typing import Any

from dapr.actor import Actor
from dapr.actor.runtime.state_change import StateChangeKind
from dapr.actor.runtime.state_manager import ActorStateManager, StateMetadata


class UncheckedWrites:
    """The actor's state manager for a ThreadStore, without the read the SDK makes before
    writing a key it has not cached (to tell an insert from an update: both are the same
    upsert in the transaction it sends). The store addresses pages by what the thread's
    record says, so it never needs that read: it cost a sidecar round trip per new key."""

    def __init__(self, manager: ActorStateManager) -> None:
        self._manager = manager

    async def try_get_state(self, key: str) -> tuple[bool, Any]:
        return await self._manager.try_get_state(key)

    async def try_remove_state(self, key: str) -> bool:
        return await self._manager.try_remove_state(key)

    async def set_state(self, key: str, value: Any) -> None:
        await self.set_state_ttl(key, value, None)

    async def set_state_ttl(self, key: str, value: Any, ttl_in_seconds: int | None) -> None:
        tracker = self._manager._get_contextual_state_tracker()
        if key in tracker:  # the SDK's own path, which reads nothing for a cached key
            await self._manager.set_state_ttl(key, value, ttl_in_seconds)
        else:  # an update, so a removal before the commit still deletes it in the store
            tracker[key] = StateMetadata(value, StateChangeKind.update, ttl_in_seconds)


async def commit(actor: Actor) -> None:
    """Saves every write of the turn so far in one transaction."""
    await actor._state_manager.save_state()


async def discard(actor: Actor) -> None:
    await actor._state_manager.clear_cache()


async def read_committed(actor: Actor, key: str) -> tuple[bool, Any]:
    """A key as the store holds it now, past the turn's cache."""
    context = actor._runtime_ctx
    return await context.state_provider.try_load_state(
        context.actor_type_info.type_name, actor.id.id, key
    )


def forget_cached(actor: Actor, keys: list[str]) -> None:
    """Drops committed keys from the state manager's cache (it need not keep them)."""
    tracker = actor._state_manager._get_contextual_state_tracker()
    for key in keys:
        tracker.pop(key, None)
