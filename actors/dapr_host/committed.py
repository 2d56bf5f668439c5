"""Reads of a thread's committed state that bypass its actor: no lock, no activation.

daprd's actor state API reads any actor's keys of this app-id from the store without
taking the actor's lock or checking where it is placed, so polling a run and replaying
its events answer at once even while a step holds the lock. Only the actor writes.
"""

from __future__ import annotations

import json
from typing import Any

from actors.threads.contract import THREAD_ACTOR
from actors.threads.store import ThreadStore
from threadhost.common.sidecar import PooledActorClient


class CommittedReads:
    """A read-only stand-in for the actor's state manager, for a ThreadStore."""

    def __init__(self, client: PooledActorClient, thread_id: str) -> None:
        self._client, self._thread_id = client, thread_id

    async def try_get_state(self, key: str) -> tuple[bool, Any]:
        raw = await self._client.get_state(THREAD_ACTOR, self._thread_id, key)
        return (True, json.loads(raw)) if raw else (False, None)

    async def set_state(self, key: str, value: Any) -> None:
        raise TypeError("committed reads are read-only: only the thread's actor writes")


def committed_store(client: PooledActorClient, thread_id: str) -> ThreadStore:
    return ThreadStore(CommittedReads(client, thread_id))
