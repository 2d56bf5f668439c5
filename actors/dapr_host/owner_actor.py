"""The Owner actor: one per caller (person or service), for what spans their threads.

It keeps the caller's thread list (so listing touches no thread actor) and their rate
limits, which hold across gateway replicas because the actor is one, wherever it lives.
Counters live in memory: a host that dies forgets the current minute, nothing more.
"""

from __future__ import annotations

import base64
import time
from datetime import datetime
from typing import Any

from dapr.actor import Actor, ActorInterface, actormethod
from pydantic import BaseModel, Field

Payload = dict[str, Any]
THREADS_PER_PAGE = 100
OWNER_ACTOR_TYPE = "Owner"


def owner_actor_id(owner: str) -> str:
    """Owners hold ':' and '/', which actor ids in URLs may not: a URL-safe encoding."""
    return base64.urlsafe_b64encode(owner.encode()).decode().rstrip("=")


class ThreadSummary(BaseModel):
    id: str
    agent: str
    created_at: datetime
    metadata: dict[str, str] = Field(default_factory=dict)


class OwnerInterface(ActorInterface):
    @actormethod(name="AddThread")
    async def add_thread(self, request: Payload) -> Payload: ...

    @actormethod(name="RemoveThread")
    async def remove_thread(self, request: Payload) -> Payload: ...

    @actormethod(name="ListThreads")
    async def list_threads(self, request: Payload) -> Payload: ...

    @actormethod(name="Admit")
    async def admit(self, request: Payload) -> Payload: ...

    @actormethod(name="RunEnded")
    async def run_ended(self, request: Payload) -> Payload: ...

    @actormethod(name="SetFollowups")
    async def set_followups(self, request: Payload) -> Payload: ...


class Owner(Actor, OwnerInterface):
    """Registered as actor type `Owner`."""

    def __init__(self, ctx: Any, actor_id: Any) -> None:
        super().__init__(ctx, actor_id)
        self._window_start, self._requests, self._runs = 0.0, 0, 0

    async def _pages(self) -> int:
        found, count = await self._state_manager.try_get_state("threads.count")
        return (count + THREADS_PER_PAGE - 1) // THREADS_PER_PAGE if found else 0

    async def add_thread(self, request: Payload) -> Payload:
        """Lists the thread, newest; once: a retried creation finds it among the newest."""
        summary = ThreadSummary.model_validate(request).model_dump(mode="json")
        found, count = await self._state_manager.try_get_state("threads.count")
        count = count if found else 0
        if count:
            _, newest = await self._state_manager.try_get_state(
                f"threads.{(count - 1) // THREADS_PER_PAGE}")
            if any(t["id"] == summary["id"] for t in newest or []):
                return {"status": "ok"}
        key = f"threads.{count // THREADS_PER_PAGE}"
        _, page = await self._state_manager.try_get_state(key)
        await self._state_manager.set_state(key, [*(page or []), summary])
        await self._state_manager.set_state("threads.count", count + 1)
        return {"status": "ok"}

    async def remove_thread(self, request: Payload) -> Payload:
        """Rewrites the page holding it; the count keeps the slot, so pages stay aligned.
        Its follow-ups no longer count against the owner's."""
        _, counts = await self._state_manager.try_get_state("followups")
        if counts and request.get("thread_id") in counts:
            await self._state_manager.set_state("followups", {
                t: n for t, n in counts.items() if t != request.get("thread_id")})
        for index in range(await self._pages()):
            _, page = await self._state_manager.try_get_state(f"threads.{index}")
            kept = [t for t in page or [] if t["id"] != request.get("thread_id")]
            if len(kept) != len(page or []):
                await self._state_manager.set_state(f"threads.{index}", kept)
                return {"status": "ok"}
        return {"status": "not_found"}

    async def list_threads(self, request: Payload) -> Payload:
        """Newest first."""
        offset, limit = int(request.get("offset", 0)), int(request.get("limit", 20))
        threads: list[dict[str, Any]] = []
        for index in reversed(range(await self._pages())):
            _, page = await self._state_manager.try_get_state(f"threads.{index}")
            threads += list(reversed(page or []))
            if len(threads) >= offset + limit:
                break
        return {"status": "ok", "threads": threads[offset:offset + limit]}

    async def admit(self, request: Payload) -> Payload:
        """A request (and, with `run`, a run start) within the caller's limits?"""
        now = time.monotonic()
        if now - self._window_start >= 60:
            self._window_start, self._requests = now, 0
        per_minute, runs = int(request.get("per_minute", 0)), int(request.get("max_runs", 0))
        if per_minute and self._requests >= per_minute:
            return {"allowed": False, "retry_after": max(1, int(60 - (now - self._window_start)))}
        if request.get("run") and runs and self._runs >= runs:
            return {"allowed": False, "retry_after": 5}
        self._requests += 1
        self._runs += 1 if request.get("run") else 0
        return {"allowed": True}

    async def run_ended(self, request: Payload) -> Payload:
        self._runs = max(0, self._runs - 1)
        return {"status": "ok"}

    async def set_followups(self, request: Payload) -> Payload:
        """A thread now has `count` follow-ups scheduled: allowed unless it has more than
        before and the owner's total would pass `limit` (0: no bound). Kept by thread,
        so a repeated or lost call is put right by the thread's next one; only threads
        with some are kept, so the map holds `limit` threads at most."""
        thread, count = str(request["thread_id"]), int(request["count"])
        limit = int(request.get("limit", 0))
        _, counts = await self._state_manager.try_get_state("followups")
        counts = dict(counts or {})
        others = sum(n for t, n in counts.items() if t != thread)
        if limit and count > counts.get(thread, 0) and others + count > limit:
            return {"allowed": False, "scheduled": others + counts.get(thread, 0)}
        if count:
            counts[thread] = count
        else:
            counts.pop(thread, None)
        await self._state_manager.set_state("followups", counts)
        return {"allowed": True}
