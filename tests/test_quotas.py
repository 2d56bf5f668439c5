"""Quotas: what an owner, a service's end user and a tenant may spend per day and month,
counted across runs by every process's ledger without a funnel; over quota, a turn is a
429 saying when it resets, and a run in flight ends `incomplete` before its next model
call. In-process for the ledger, and on the split stack with the real runtime."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from actors.engine.quotas import Budget, Quotas, ScopeLimits, Used, resets_at
from tests.conftest import Api, make_stack_config, wait_for
from threadhost.common.usage_ledger import UsageLedger
from threadhost.stack import Stack


class UsageActors:
    """The `Usage` actors, in memory, counting the calls they get."""

    def __init__(self) -> None:
        self.totals: dict[str, Used] = {}
        self.calls: list[tuple[str, str]] = []

    async def invoke(self, actor_id: str, method: str, body: bytes) -> bytes:
        self.calls.append((actor_id, method))
        used = self.totals.get(actor_id, Used())
        if method == "Add":
            used = self.totals[actor_id] = used.plus(Used.model_validate_json(body))
        return used.model_dump_json().encode()


def _quotas(**limits: ScopeLimits) -> Quotas:
    return Quotas(**limits)


def test_spending_counts_once_a_second_per_scope_however_many_calls() -> None:
    actors = UsageActors()
    ledger = UsageLedger(_quotas(owner=ScopeLimits(day=Budget(tokens=10_000))), actors.invoke)

    async def scenario() -> None:
        for n in range(500):  # 500 model calls of one service's end users
            ledger.spend(f"app:portal/user:u{n}", 10, 0.001)
        await ledger.flush()

    asyncio.run(scenario())
    adds = [call for call in actors.calls if call[1] == "Add"]
    assert len(adds) == 1, "one call to the service's Usage actor per flush"
    [total] = actors.totals.values()
    assert total.tokens == 5_000 and round(total.cost_usd, 6) == 0.5


def test_each_scope_is_refused_on_its_own_and_says_when_it_resets() -> None:
    actors = UsageActors()
    quotas = _quotas(
        end_user=ScopeLimits(day=Budget(tokens=100)),
        owner=ScopeLimits(month=Budget(cost_usd=1.0)),
        tenant=ScopeLimits(day=Budget(tokens=50)),
    )
    ledger = UsageLedger(quotas, actors.invoke)

    async def scenario() -> list:
        ledger.spend("app:portal/user:alice", 100, 0.01)
        ledger.spend("acme/sam", 60, 0.0)
        return [
            await ledger.refusal("app:portal/user:alice"),
            await ledger.refusal("app:portal/user:bob"),
            await ledger.refusal("acme/sam"),
            await ledger.refusal("globex/sam"),
            await ledger.refusal("app:portal"),
        ]

    alice, bob, sam, other_tenant, service = asyncio.run(scenario())
    assert alice is not None and (alice.kind, alice.period) == ("end_user", "day")
    assert alice.resets_at == resets_at("day", datetime.now(UTC))
    assert "100 of 100 tokens" in alice.reason
    assert bob is None and other_tenant is None and service is None
    assert sam is not None and sam.kind == "tenant"


def test_periods_reset_at_midnight_and_on_the_first_of_the_month() -> None:
    late = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert resets_at("day", late) == datetime(2027, 1, 1, tzinfo=UTC)
    assert resets_at("month", late) == datetime(2027, 1, 1, tzinfo=UTC)
    assert resets_at("month", datetime(2026, 2, 3, tzinfo=UTC)) == datetime(2026, 3, 1, tzinfo=UTC)


def test_over_quota_a_run_stops_and_the_next_turn_is_a_429(dapr_bin: Path, tmp_path: Path) -> None:
    quotas = '{"owner": {"day": {"tokens": 1}}}'
    config = make_stack_config(
        dapr_bin, tmp_path, uuid.uuid4().hex[:10], env={"THREADHOST_QUOTAS": quotas}
    )
    with Stack(config, split=True) as stack:
        api = Api(stack.api.url)
        thread = api.create_thread(agent="support")
        # The first model call spends the day's one token: the run's next call is refused.
        first = api.http.post(f"/v1/threads/{thread}/messages", json={"content": "Order 1001?"})
        assert first.status_code == 200, first.text
        run = first.json()["run"]
        assert run["status"] == "incomplete" and run["reason"].startswith("quota:"), run
        assert run["steps"] >= 1

        def refused() -> httpx.Response | None:
            answer = api.http.post(f"/v1/threads/{thread}/messages", json={"content": "And?"})
            return answer if answer.status_code == 429 else None

        # Every gateway sees it within about a second.
        answer = wait_for(refused, 15, "the next turn to be refused")
        assert isinstance(answer, httpx.Response)
        problem = answer.json()
        assert problem["type"].endswith("/quota-exceeded")
        midnight = resets_at("day", datetime.now(UTC))
        assert problem["resets_at"] == midnight.isoformat()
        assert 0 < int(answer.headers["retry-after"]) <= 86_400
        usage = api.http.get("/v1/usage").json()["quotas"]
        [line] = usage
        assert (line["scope"], line["period"], line["left"]["tokens"]) == ("owner", "day", 0)
        assert line["used"]["tokens"] >= 1


def test_spending_an_actor_could_not_take_is_sent_again_without_more_spending() -> None:
    actors = UsageActors()
    down = [True]

    async def flaky(actor_id: str, method: str, body: bytes) -> bytes:
        if down[0]:
            down[0] = False
            raise TimeoutError
        return await actors.invoke(actor_id, method, body)

    ledger = UsageLedger(_quotas(owner=ScopeLimits(day=Budget(tokens=10))), flaky)

    async def scenario() -> None:
        ledger.spend("alice", 4, 0.0)
        await asyncio.sleep(2.5)  # the first hand-over fails, the next takes it

    asyncio.run(scenario())
    assert [used.tokens for used in actors.totals.values()] == [4]
