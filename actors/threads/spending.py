"""What a thread's runs spend, counted against its owner's quotas (actors/engine/quotas.py)
by the host's ledger, through the thread's effects: a run asks before each model call,
and every step's model calls (compaction included) are counted when it is taken."""

from __future__ import annotations

from actors.threads.effects import Effects


class OwnerSpending:
    def __init__(self, effects: Effects, owner: str) -> None:
        self._effects, self._owner = effects, owner

    async def refused(self) -> str | None:
        """Why the run may call no model now, if its owner's quota is used."""
        refusal = await self._effects.quota_refusal(self._owner)
        return refusal.reason if refusal is not None else None

    def spent(self, tokens: int, cost_usd: float) -> None:
        self._effects.spend(self._owner, tokens, cost_usd)
