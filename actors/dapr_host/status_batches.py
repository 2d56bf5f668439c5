"""Threads' state changes on their way to their owners (actors/threads/status_told.py),
gathered per owner in each process and handed over together every BATCH_SECONDS: an
owner whose threads start and stop a thousand runs a second gets a few calls a second
from each host, not two per run."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from actors.threads.owner_contract import SetStatus, StatusChange

log = logging.getLogger(__name__)

BATCH_SECONDS = 0.5
# Owners handed their changes at once, at most (the rest wait their turn).
AT_ONCE = 8

Send = Callable[[str, SetStatus], Awaitable[object]]


class StatusBatches:
    def __init__(self, send: Send) -> None:
        self._send = send
        self._pending: dict[str, dict[str, StatusChange]] = {}
        self._sending: asyncio.Task[None] | None = None
        # Owners whose changes are on their way now: done when they have landed.
        self._in_flight: dict[str, asyncio.Future[None]] = {}

    async def forget(self, owner: str, thread_id: str) -> None:
        """The thread is gone: its changes not sent yet are dropped, and changes on their
        way to its owner have landed when this returns (its removal comes after them)."""
        self._pending.get(owner, {}).pop(thread_id, None)
        in_flight = self._in_flight.get(owner)
        if in_flight is not None:
            await asyncio.shield(in_flight)

    def take(self, owner: str, thread_id: str) -> list[StatusChange]:
        """The thread's change not sent yet, taken out of the batch: the caller tells it
        on a call to the owner it makes anyway (and adds it back if that call fails)."""
        change = self._pending.get(owner, {}).pop(thread_id, None)
        return [] if change is None else [change]

    def add(self, owner: str, change: StatusChange) -> None:
        changes = self._pending.setdefault(owner, {})
        known = changes.get(change.thread.id)
        if known is None or known.at <= change.at:
            changes[change.thread.id] = change
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._send_soon())

    async def _send_soon(self) -> None:
        while self._pending:
            await asyncio.sleep(BATCH_SECONDS)
            pending, self._pending = self._pending, {}
            loop = asyncio.get_running_loop()
            # On their way from now on: a forget() waits for them.
            landed = {owner: loop.create_future() for owner in pending}
            self._in_flight.update(landed)
            gate = asyncio.Semaphore(AT_ONCE)
            await asyncio.gather(
                *(self._one(owner, c, gate, landed[owner]) for owner, c in pending.items())
            )

    async def _one(
        self,
        owner: str,
        changes: dict[str, StatusChange],
        gate: asyncio.Semaphore,
        landed: asyncio.Future[None],
    ) -> None:
        try:
            async with gate:
                if changes:
                    await self._send(owner, SetStatus(changes=list(changes.values())))
        except Exception as exc:  # noqa: BLE001 - each thread's next change puts it right
            log.warning(
                "state changes of %d threads not told (%s)", len(changes), type(exc).__name__
            )
        finally:
            landed.set_result(None)
            if self._in_flight.get(owner) is landed:
                del self._in_flight[owner]


_batches: StatusBatches | None = None


def process_batches(send: Send) -> StatusBatches:
    global _batches
    if _batches is None:
        _batches = StatusBatches(send)
    return _batches
