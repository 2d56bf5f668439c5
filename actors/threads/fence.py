"""Fencing of stale writers: before a step's checkpoint, is the run in the store still
where the step began? A host that lost the thread mid-step finds it has moved on.

The committed run record is read past the state manager's cache before the first
checkpoint of every actor turn that continues a run, and again whenever the chain since
the last confirmation has used up the chain budget (so after every slow step; timed as
the chain is, actors/threads/chain_clock.py); quick steps chained right behind a confirmation
share it. A commit of this turn is a confirmation too,
and so is a caller's call that starts or resumes a run (placement sent it here, and it
holds the thread's lock): such a run reads nothing back before its first checkpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from actors.engine.run import RunRecord
from actors.threads.chain_clock import ChainClock
from actors.threads.run_steps import StaleStep
from actors.threads.state import read_stored, run_key

ReadCommitted = Callable[[str], Awaitable[tuple[bool, Any]]]


class Fence:
    def __init__(self, read_committed: ReadCommitted, budget_seconds: float) -> None:
        self._read, self._budget = read_committed, budget_seconds
        self._confirmed: ChainClock | None = None

    def new_turn(self) -> None:
        self._confirmed = None

    def confirmed(self) -> None:
        """This turn just committed the run: the store holds what it holds."""
        self._confirmed = ChainClock()

    def fresh(self) -> bool:
        """Whether the last confirmation still counts (a chain budget is not spent)."""
        confirmed = self._confirmed
        return confirmed is not None and not confirmed.spent(self._budget)

    def for_step(self, run_id: str, steps: int, next_seq: int) -> Callable[[], Awaitable[None]]:
        async def check() -> None:
            if self.fresh():
                return
            try:
                found, data = await self._read(run_key(run_id))
            except Exception as exc:  # noqa: BLE001 - unconfirmed means not written
                raise StaleStep(f"could not read run {run_id} back: {exc}") from exc
            committed = read_stored(RunRecord, data) if found else None
            if committed is None or (committed.steps, committed.next_seq) != (steps, next_seq):
                raise StaleStep(f"run {run_id} was advanced elsewhere during this step")
            self.confirmed()

        return check
