"""Counts what threads spend against their owners' quotas (actors/engine/quotas.py), across
hosts, without a funnel: each process adds up its own spending per scope and period and
hands it to that scope's `Usage` actor once a second, and reads a scope's total at most
once a second. However many runs a service's end users have going, its owner's `Usage`
actor takes about one call per second from each process, not one per model call.

The price of that: a scope may overshoot its quota by what the cluster spends in about a
second (each process's last unsent second, and what it has not read yet), and a process
that dies loses its last unsent second of counting. Both are documented (docs/services.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from actors.engine.quotas import (
    PERIODS,
    Period,
    QuotaRefusal,
    Quotas,
    ScopeKind,
    Used,
    over,
    period_key,
    resets_at,
)
from threadhost.common.ids import encoded_actor_id
from threadhost.common.owners import spending_scopes
from threadhost.common.settings import Settings
from threadhost.common.sidecar import shared_actor_client

log = logging.getLogger(__name__)

USAGE_ACTOR = "Usage"
FLUSH_SECONDS = 1.0
READ_AGAIN_SECONDS = 1.0

# Calls the `Usage` actor of an id: (actor id, method, JSON body) -> JSON answer.
Invoke = Callable[[str, str, bytes], Awaitable[bytes]]


def usage_actor_id(kind: ScopeKind, who: str, period: Period, now: datetime) -> str:
    """One actor per scope and period (its state expires after the period)."""
    raw = f"{kind}\n{who}\n{period}\n{period_key(period, now)}"
    return encoded_actor_id(raw)


class UsageLedger:
    def __init__(self, quotas: Quotas, invoke: Invoke) -> None:
        self.quotas, self._invoke = quotas, invoke
        self._unsent: dict[str, Used] = {}
        self._known: dict[str, tuple[Used, float]] = {}
        self._flusher: asyncio.Task[None] | None = None

    def _counted(self, owner: str, now: datetime) -> list[tuple[ScopeKind, Period, str]]:
        """The (scope kind, period, actor id) an owner's spending counts in: those with a
        limit only."""
        return [
            (kind, period, usage_actor_id(kind, who, period, now))
            for kind, who in spending_scopes(owner)
            for period in PERIODS
            if self.quotas.of(kind).of(period) is not None
        ]

    def spend(self, owner: str, tokens: int, cost_usd: float) -> None:
        """Counts a model call's spending (sent within a second)."""
        if not self.quotas.on or (tokens <= 0 and cost_usd <= 0):
            return
        spent = Used(tokens=tokens, cost_usd=cost_usd)
        for _, _, actor_id in self._counted(owner, datetime.now(UTC)):
            self._unsent[actor_id] = self._unsent.get(actor_id, Used()).plus(spent)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        """Flushes once a second while anything is unsent (what an actor could not take
        is tried again a second later)."""
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()
            if not self._unsent:
                return

    async def flush(self) -> None:
        """Hands every scope's unsent spending to its actor; kept for the next flush if
        the actor cannot be reached."""
        unsent, self._unsent = self._unsent, {}
        # Totals read long ago are read again when needed: the table stays small.
        stale = time.monotonic() - 60 * READ_AGAIN_SECONDS
        self._known = {a: known for a, known in self._known.items() if known[1] >= stale}
        for actor_id, spent in unsent.items():
            try:
                answer = await self._invoke(actor_id, "Add", spent.model_dump_json().encode())
                self._known[actor_id] = (Used.model_validate_json(answer), time.monotonic())
            except Exception as exc:  # noqa: BLE001 - counted again at the next flush
                log.warning("usage not counted yet (%s): tried again", type(exc).__name__)
                self._unsent[actor_id] = self._unsent.get(actor_id, Used()).plus(spent)

    async def _used(self, actor_id: str) -> Used:
        """The scope's total as last read (within a second), with what is unsent; what
        was read before if it cannot be read now (a quota check never fails a turn)."""
        known = self._known.get(actor_id)
        if known is None or time.monotonic() - known[1] >= READ_AGAIN_SECONDS:
            try:
                answer = await self._invoke(actor_id, "Read", b"{}")
                known = (Used.model_validate_json(answer), time.monotonic())
                self._known[actor_id] = known
            except Exception as exc:  # noqa: BLE001 - read again at the next check
                log.warning("usage could not be read (%s): not checked", type(exc).__name__)
        used = known[0] if known is not None else Used()
        return used.plus(self._unsent.get(actor_id, Used()))

    async def refusal(self, owner: str) -> QuotaRefusal | None:
        """Why the owner's threads may spend no more now, if they may not."""
        if not self.quotas.on:
            return None
        now = datetime.now(UTC)
        for kind, period, actor_id in self._counted(owner, now):
            budget = self.quotas.of(kind).of(period)
            assert budget is not None
            spent = over(await self._used(actor_id), budget)
            if spent is not None:
                return QuotaRefusal(
                    kind=kind, period=period, spent=spent, resets_at=resets_at(period, now)
                )
        return None

    async def report(self, owner: str) -> list[dict[str, object]]:
        """Every scope and period with a quota that the owner's spending counts in:
        used, limit, left, and when it resets (read fresh)."""
        now = datetime.now(UTC)
        lines: list[dict[str, object]] = []
        for kind, period, actor_id in self._counted(owner, now):
            budget = self.quotas.of(kind).of(period)
            assert budget is not None
            used = Used.model_validate_json(await self._invoke(actor_id, "Read", b"{}"))
            used = used.plus(self._unsent.get(actor_id, Used()))
            left = Used(
                tokens=max((budget.tokens or 0) - used.tokens, 0),
                cost_usd=max(round((budget.cost_usd or 0) - used.cost_usd, 6), 0.0),
            )
            lines.append(
                {
                    "scope": kind,
                    "period": period,
                    "period_key": period_key(period, now),
                    "resets_at": resets_at(period, now),
                    "used": used.model_dump(),
                    "limit": budget.model_dump(),
                    "left": {
                        "tokens": left.tokens if budget.tokens is not None else None,
                        "cost_usd": left.cost_usd if budget.cost_usd is not None else None,
                    },
                }
            )
        return lines


def ledger_of(quotas: Quotas) -> UsageLedger:
    """The process's ledger, through its sidecar."""

    async def invoke(actor_id: str, method: str, body: bytes) -> bytes:
        return await shared_actor_client().invoke_method(USAGE_ACTOR, actor_id, method, body)

    return UsageLedger(quotas, invoke)


_ledger: UsageLedger | None = None


def process_ledger(settings: Settings) -> UsageLedger:
    """The one ledger of this process (its unsent counts are the process's)."""
    global _ledger
    if _ledger is None:
        _ledger = ledger_of(settings.quotas)
    return _ledger
