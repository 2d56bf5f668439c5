"""Quotas: what an owner, a service's end user or a tenant may spend in a day and in a
month, in tokens and in dollars, counted across every run, follow-up, compaction and
child run of their threads. The counting is the host's (threadhost/common/usage_ledger.py);
here are the limits, the periods and the verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")
# Who spends: the owner (a person, or a service for all its end users), a service's end
# user, a person's tenant.
ScopeKind = Literal["owner", "end_user", "tenant"]


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: int | None = Field(default=None, ge=1)
    cost_usd: float | None = Field(default=None, gt=0)


class ScopeLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: Budget | None = None
    month: Budget | None = None

    def of(self, period: Period) -> Budget | None:
        return self.day if period == "day" else self.month


class Quotas(BaseModel):
    """THREADHOST_QUOTAS, e.g. {"end_user": {"day": {"tokens": 200000}},
    "owner": {"month": {"cost_usd": 500}}}. Nothing set: nothing is counted."""

    model_config = ConfigDict(extra="forbid")

    owner: ScopeLimits = Field(default_factory=ScopeLimits)
    end_user: ScopeLimits = Field(default_factory=ScopeLimits)
    tenant: ScopeLimits = Field(default_factory=ScopeLimits)

    def of(self, kind: ScopeKind) -> ScopeLimits:
        return getattr(self, kind)

    @property
    def on(self) -> bool:
        return any(
            self.of(kind).of(period)
            for kind in ("owner", "end_user", "tenant")
            for period in PERIODS
        )


class Used(BaseModel):
    tokens: int = 0
    cost_usd: float = 0.0

    def plus(self, other: Used) -> Used:
        return Used(tokens=self.tokens + other.tokens, cost_usd=self.cost_usd + other.cost_usd)


def period_key(period: Period, now: datetime) -> str:
    """The period `now` is in, in UTC: `2026-12-07`, `2026-12`."""
    return now.strftime("%Y-%m-%d" if period == "day" else "%Y-%m")


def resets_at(period: Period, now: datetime) -> datetime:
    """When the period `now` is in ends (UTC midnight; the first of the next month)."""
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return start + timedelta(days=1)
    return (start.replace(day=1) + timedelta(days=32)).replace(day=1)


def over(used: Used, budget: Budget) -> str | None:
    """What is used up, if anything."""
    if budget.tokens is not None and used.tokens >= budget.tokens:
        return f"{used.tokens} of {budget.tokens} tokens"
    if budget.cost_usd is not None and used.cost_usd >= budget.cost_usd:
        return f"${used.cost_usd:.4f} of ${budget.cost_usd}"
    return None


class QuotaRefusal(BaseModel):
    """Why no more may be spent now, and when it may again."""

    kind: ScopeKind
    period: Period
    spent: str
    resets_at: datetime

    @property
    def reason(self) -> str:
        who = self.kind.replace("_", " ")
        return (
            f"quota: the {who}'s {self.period} quota is used ({self.spent}); "
            f"it resets at {self.resets_at.isoformat()}"
        )
