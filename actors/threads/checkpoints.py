"""Checkpoints of a chain of quick steps, committed together.

Each step of a run ends in a checkpoint: its writes are in the state manager, and its
events may be seen only once they are committed. A chain of quick steps (a scripted or
cached model, local tools) would pay a store transaction per step; instead a checkpoint
waits here, with its events, until one of these comes first:

- the chain ends (the run stops or waits, or hands over to a later turn): `flush`;
- something must read the store as committed (the fence): `flush`;
- `linger` passes while the next step is still running (a model call that takes a
  while): the checkpoints so far are committed then, beside the step, not after it.
  Like the chain budget, it counts the time the event loop was idle (actors/threads/chain_clock.py):
  on a busy host, quick steps wait their turn on the loop, and are not slow for it.

So a quick turn is one transaction, a host that dies loses at most `linger` of finished
steps (the thread service's is the chain budget: a busy host stretches quick steps, and
a shorter one split their chains into a commit each), and nothing is seen before it is
committed: the events wait behind their commit, and text deltas of a later step wait
behind the events of the earlier ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from actors.threads.chain_clock import ChainClock

# What waits: a checkpoint (visible once committed) or a message behind one.
_CHECKPOINT, _MESSAGE = "checkpoint", "message"


class Checkpoints:
    def __init__(
        self, commit: Callable[[], Awaitable[None]], publish: Callable[[Any], None], linger: float
    ) -> None:
        # `commit` saves the turn's writes; `publish` sends what the commit made visible
        # (a run's events, or a text delta that came after them).
        self._commit, self._publish, self._linger = commit, publish, linger
        self._waiting: list[tuple[str, Callable[[], None]]] = []
        self._timer: asyncio.Task[None] | None = None
        self._committing: asyncio.Task[None] | None = None  # a timer whose commit began
        self._lock = asyncio.Lock()
        self._held = False  # by a step writing its checkpoint (`hold`)

    async def hold(self) -> None:
        """A step is about to write its checkpoint: no commit starts until `release`, so
        none saves half of it (a write may wait for a read of a key not cached)."""
        await self._lock.acquire()
        self._held = True

    def release(self) -> None:
        """The step's writes are done (or it wrote nothing): commits may go on."""
        if self._held:
            self._held = False
            self._lock.release()

    def add(self, visible: Callable[[], None]) -> None:
        """A checkpoint is written but not committed; `visible` runs once it is (it
        publishes the checkpoint's events)."""
        self._raise_if_failed()
        self._waiting.append((_CHECKPOINT, visible))
        self._arm()

    def publish(self, message: Any) -> None:
        """A message for the run's subscribers, in order behind the events of
        checkpoints not yet committed."""
        if self._waiting:
            self._waiting.append((_MESSAGE, lambda: self._publish(message)))
        else:
            self._publish(message)

    async def flush(self) -> None:
        """Commits what waits, and makes it visible; raises if a commit failed (then
        what waited is not in the store, and is not seen)."""
        while (timer := self._timer) is not None:
            self._timer = None
            if timer is self._committing or timer.done():
                await timer  # its commit is under way: wait for it, and see how it went
            else:
                timer.cancel()
        await self._commit_waiting()

    def drop(self) -> None:
        """The turn failed: what waits is thrown away with its unsaved writes."""
        timer, self._timer = self._timer, None
        if timer is not None and not timer.done():
            timer.cancel()
        elif timer is not None and not timer.cancelled():
            timer.exception()  # seen: the turn fails anyway
        self._waiting = []

    def _arm(self) -> None:
        if self._timer is None and any(kind == _CHECKPOINT for kind, _ in self._waiting):
            self._timer = asyncio.create_task(self._after_linger())

    def _raise_if_failed(self) -> None:
        timer = self._timer
        if timer is not None and timer.done() and not timer.cancelled() and timer.exception():
            self._timer = None
            raise timer.exception()  # type: ignore[misc]

    async def _after_linger(self) -> None:
        # The linger is idle time: a busy host's quick steps are not slow ones.
        clock, wait = ChainClock(), self._linger
        while wait > 0:
            await asyncio.sleep(wait)
            wait = (
                0.0
                if clock.spent(self._linger)
                else max(self._linger - clock.idle(), self._linger / 4)
            )
        self._committing = asyncio.current_task()
        await self._commit_waiting()
        if self._timer is self._committing:
            self._timer = None
            self._arm()  # checkpoints that came while it committed

    async def _commit_waiting(self) -> None:
        async with self._lock:
            # What waits now is in the state manager: the commit below saves it (a
            # checkpoint added while it is under way waits for the next one).
            count = len(self._waiting)
            if not any(kind == _CHECKPOINT for kind, _ in self._waiting[:count]):
                return
            await self._commit()
            done, rest = self._waiting[:count], self._waiting[count:]
            while rest and rest[0][0] == _MESSAGE:
                done.append(rest.pop(0))
            self._waiting = rest
            for _, visible in done:
                visible()
