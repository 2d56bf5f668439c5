"""GET /v1/usage: what the caller's threads spent of each quota that counts them (actors/
engine/quotas.py), what is left, and when each resets."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from actors.engine.quotas import Budget, Period, ScopeKind, Used
from gateway.deps import CallerDep, SettingsDep, admitted
from gateway.problems import problem_responses
from threadhost.common.usage_ledger import process_ledger

router = APIRouter(
    prefix="/v1",
    tags=["usage"],
    dependencies=[Depends(admitted)],
    responses=problem_responses(401, 403, 429, 500, 503),
)


class Left(BaseModel):
    tokens: int | None
    cost_usd: float | None


class QuotaLine(BaseModel):
    scope: ScopeKind
    period: Period
    # The day (2026-12-07) or month (2026-12) it counts, in UTC.
    period_key: str
    resets_at: datetime
    used: Used
    limit: Budget
    left: Left


class UsageView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "object": "usage",
                    "quotas": [
                        {
                            "scope": "end_user",
                            "period": "day",
                            "period_key": "2026-12-07",
                            "resets_at": "2026-12-08T00:00:00Z",
                            "used": {"tokens": 12400, "cost_usd": 0.0031},
                            "limit": {"tokens": 200000, "cost_usd": None},
                            "left": {"tokens": 187600, "cost_usd": None},
                        }
                    ],
                }
            ]
        }
    )
    object: Literal["usage"] = "usage"
    quotas: list[QuotaLine]


@router.get("/usage", response_model=UsageView)
async def usage(caller: CallerDep, settings: SettingsDep) -> UsageView:
    """Each quota that counts the caller's threads (as owner, end user, tenant; per day
    and per month), counted across every run, follow-up, compaction and child run on
    every host, to within about a second. Empty when no quota is set."""
    lines = await process_ledger(settings).report(caller.owner)
    return UsageView.model_validate({"quotas": lines})
