"""The bound on concurrent model calls, in-process: many steps in two processes share one
gate, never hold more slots than the bound, and each gets one in turn; a process that
goes frees its slots when its hold expires, never before."""

from __future__ import annotations

import asyncio
import time

from actors.dapr_host.model_gate import LEASE_SECONDS, GateQueue, GateTable, Take
from actors.threads.contract import GetRun, RunAnswer
from actors.threads.model_slots import bounds_of
from tests.test_thread_service import SETTINGS, say, thread


class OneGate:
    def __init__(self) -> None:
        self.table = GateTable()
        self.requests = 0

    async def invoke(self, actor_id: str, method: str, body: bytes) -> bytes:
        self.requests += 1
        await asyncio.sleep(0.001)  # a call through the sidecar
        return (
            self.table.take(Take.model_validate_json(body), time.monotonic())
            .model_dump_json()
            .encode()
        )


def test_two_processes_never_hold_more_than_the_bound_and_every_step_gets_one() -> None:
    gate = OneGate()
    running = peak = done = 0
    finished: list[int] = []

    async def scenario() -> None:
        nonlocal running, peak, done
        queues = [GateQueue("openai", 5, gate.invoke, process) for process in ("p1", "p2")]

        async def step(n: int) -> None:
            nonlocal running, peak, done
            queue = queues[n % 2]
            assert await queue.take(f"step-{n}", wait=30)
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)  # the model call
            running -= 1
            queue.give()
            done += 1
            finished.append(n % 2)

        await asyncio.gather(*(step(n) for n in range(200)))

    asyncio.run(scenario())
    assert (done, peak) == (200, 5)
    # Both processes' steps go on together: neither waits for the other's to drain.
    assert set(finished[:40]) == {0, 1}
    # Far fewer requests than steps: each asks for all its waiting steps at once.
    assert gate.requests < 200 * 2


def test_a_step_that_cannot_wait_keeps_its_place_and_is_woken_for_its_slot() -> None:
    gate = OneGate()

    async def scenario() -> tuple[bool, bool, bool]:
        queue = GateQueue("openai:gpt-4o", 1, gate.invoke, "p1")
        first = await queue.take("a", wait=5)
        woken = asyncio.Event()

        async def wake() -> None:
            woken.set()

        second = await queue.take("b", wait=0.2, wake=wake)  # the one slot is held
        queue.give()
        await asyncio.wait_for(woken.wait(), 5)  # b's slot came: its step is woken
        again = await queue.take("b", wait=0)  # and held for it when it comes back
        queue.give()
        return first, second, again

    assert asyncio.run(scenario()) == (True, False, True)


def test_a_gone_process_frees_its_slots_only_when_its_hold_expires() -> None:
    table = GateTable()
    assert table.take(Take(process="gone", want=3, limit=3), now=0).granted == 3
    assert table.take(Take(process="alive", want=1, limit=3), now=LEASE_SECONDS - 1).granted == 0
    assert table.take(Take(process="alive", want=1, limit=3), now=LEASE_SECONDS + 1).granted == 1


def test_a_model_counts_against_its_vendors_bound_and_its_own() -> None:
    bounds = {"openai": 50, "openai:gpt-4o": 10}
    assert bounds_of("openai:gpt-4o", bounds) == ["openai", "openai:gpt-4o"]
    assert bounds_of("openai:gpt-4o-mini?temperature=0", bounds) == ["openai"]
    assert bounds_of("scripted", bounds) == []


def test_a_step_with_no_slot_free_is_taken_again_later_and_spends_nothing() -> None:
    settings = SETTINGS.model_copy(update={"model_concurrency": {"scripted": 1}})
    service, effects, state = thread(settings=settings)
    effects.slot_free = None  # every slot held elsewhere
    answer = say(service, wait=True)
    # The run goes on: nothing of the step was taken, it is asked for again later.
    assert answer.run.status == "running" and answer.run.steps == 0
    assert "watch" in effects.asked and effects.spent == []
    given_back: list[bool] = []
    effects.slot_free = lambda: given_back.append(True)
    asyncio.run(service.take_steps())
    read = asyncio.run(service.reads.get_run(GetRun(run_id=answer.run.run_id, owner="ann")))
    assert isinstance(read, RunAnswer) and read.run.status == "completed"
    assert effects.slots_taken and all(b == ["scripted"] for b in effects.slots_taken)
    assert len(given_back) == len(effects.slots_taken)  # every slot handed back
