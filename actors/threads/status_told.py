"""Tells the thread's owner when its state changes (active, waiting, idle), after the
commit that changed it, so the owner's lists by status (actors/threads/owner_book.py)
answer without activating any thread. Each host gathers the changes for each owner and
hands them over together, twice a second at most; a change lost with its host is put
right by the thread's next one."""

from __future__ import annotations

from datetime import UTC, datetime

from actors.threads.effects import Effects
from actors.threads.owner_contract import StatusChange, ThreadStatus, ThreadSummary
from actors.threads.store import ThreadStore


class StatusTold:
    def __init__(self, effects: Effects, store: ThreadStore) -> None:
        self._effects, self._store = effects, store
        # What the owner was last told in this activation (None: nothing yet).
        self._told: ThreadStatus | None = None

    async def committed(self) -> None:
        record = await self._store.record()
        if record is None:
            return
        status: ThreadStatus = "idle"
        if record.active_run is not None:
            run = await self._store.run(record.active_run)
            status = "waiting" if run is not None and run.status == "requires_action" else "active"
        if status == self._told:
            return  # unchanged since the owner was told (once per activation at most)
        self._told = status
        summary = ThreadSummary(
            id=record.thread_id,
            agent=record.agent,
            created_at=record.created_at,
            metadata=record.metadata,
            key=record.key,
        )
        self._effects.status_changed(
            record.owner, StatusChange(thread=summary, status=status, at=datetime.now(UTC))
        )
