"""Agents as tools and handoffs, in process: a parent thread's run asks another agent,
which runs on a child thread of its own; the parent waits without a lock and goes on
with the answer, heard once. On the runtime: test_child_runs_on_runtime.py."""

from __future__ import annotations

import asyncio

import pytest

from actors.threads.contract import ChildRunEnded, CreateThread, GetRun, PostMessage, RunAnswer
from actors.threads.service import ThreadService
from actors.threads.store import ThreadStore
from tests.memory_effects import MemoryEffects, MemoryState
from tests.test_thread_service import ENGINE, SETTINGS
from threadhost.common.settings import Settings

CHILDREN = "children"  # the reminder of a run that waits for child runs


class Threads:
    """Thread services by id, in memory, that can call each other."""

    def __init__(self, settings: Settings = SETTINGS) -> None:
        self.settings = settings
        self.services: dict[str, ThreadService] = {}
        self.effects: dict[str, MemoryEffects] = {}

    async def get(self, thread_id: str) -> ThreadService:
        if thread_id not in self.services:
            state = MemoryState()
            effects = MemoryEffects(state, thread=self.get)
            self.effects[thread_id] = effects
            self.services[thread_id] = ThreadService(
                thread_id, ThreadStore(state), ENGINE, effects, self.settings
            )
        return self.services[thread_id]

    async def deliver(self) -> None:
        """What child runs told their parents, as daprd would carry it."""
        for effects in list(self.effects.values()):
            told, effects.told = effects.told, []
            for thread_id, request in told:
                await (await self.get(thread_id)).children.child_run_ended(request)


async def _ask_manager(threads: Threads) -> tuple[ThreadService, RunAnswer]:
    parent = await threads.get("th_parent")
    await parent.create(CreateThread(agent="manager", owner="ann"))
    answer = await parent.post_message(
        PostMessage(text="Where is my parcel?", owner="ann", wait=True)
    )
    assert isinstance(answer, RunAnswer)
    return parent, answer


async def _run(service: ThreadService, run_id: str) -> RunAnswer:
    answer = await service.reads.get_run(GetRun(run_id=run_id, owner="ann", with_messages=True))
    assert isinstance(answer, RunAnswer)
    return answer


def test_a_run_asks_another_agent_waits_unlocked_and_goes_on_with_its_answer() -> None:
    async def scenario() -> None:
        threads = Threads()
        parent, answer = await _ask_manager(threads)
        run = answer.run
        # It waits for the child, not for the caller: a waiting caller keeps waiting.
        assert run.status == "requires_action" and not run.stopped
        [action] = run.required_action
        assert (action.type, action.agent) == ("agent_run", "researcher")
        assert threads.effects["th_parent"].asked.count("remind_children") == 1
        # The child thread is the owner's, with a run of the researcher for the call.
        child = threads.services[action.thread_id]
        child_record = await child._store.record()
        assert (child_record.owner, child_record.agent) == ("ann", "researcher")
        [child_run_id] = child_record.idempotency.values()
        await child.take_steps()
        child_run = (await _run(child, child_run_id)).run
        assert child_run.status == "completed"
        assert child_run.parent.run_id == run.run_id
        created = threads.effects[action.thread_id].events(child_run_id)[0]
        assert created[1] == "run.created"
        # Told to the parent, twice (the parent's check asked too): heard once.
        told = threads.effects[action.thread_id].told
        assert [t for t, _ in told] == ["th_parent"]
        repeat: ChildRunEnded = told[0][1]
        await threads.deliver()
        await parent.children.child_run_ended(repeat)
        await parent.take_steps()
        done = await _run(parent, run.run_id)
        assert done.run.status == "completed"
        results = [m for m in done.messages if m.kind == "tool_result"]
        assert [(r.content, r.is_error) for r in results] == [
            ("TRK-1001 is with ParcelCo, due in 2 days.", False)
        ]
        assert done.messages[-1].text == (
            "The researcher says: TRK-1001 is with ParcelCo, due in 2 days."
        )
        # The child's usage counts in the parent's, and the parent names its child.
        [recorded] = done.run.children
        assert (recorded.thread_id, recorded.run_id) == (action.thread_id, child_run_id)
        assert done.run.usage["input_tokens"] >= child_run.usage["input_tokens"] > 0

    asyncio.run(scenario())


def test_a_child_whose_end_was_not_heard_is_found_by_the_parents_check() -> None:
    async def scenario() -> None:
        threads = Threads()
        parent, answer = await _ask_manager(threads)
        [action] = answer.run.required_action
        await threads.services[action.thread_id].take_steps()
        threads.effects[action.thread_id].told.clear()  # lost with its host
        await parent.reminder(CHILDREN, answer.run.run_id)
        await parent.take_steps()
        assert (await _run(parent, answer.run.run_id)).run.status == "completed"
        # Asking a child again starts nothing new.
        assert (await threads.services[action.thread_id]._store.record()).runs_created == 1
        await parent.reminder(CHILDREN, answer.run.run_id)
        assert threads.effects["th_parent"].asked[-1] == "forget_children"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "limit,refusal",
    [({"max_agent_depth": 0}, "levels deep"), ({"max_child_runs": 0}, "other agents 0 times")],
)
def test_agents_ask_agents_only_so_deep_and_so_often(limit: dict, refusal: str) -> None:
    async def scenario() -> None:
        threads = Threads(SETTINGS.model_copy(update=limit))
        parent, answer = await _ask_manager(threads)
        assert "chain_step" in threads.effects["th_parent"].asked  # it goes on by itself
        await parent.take_steps()
        done = await _run(parent, answer.run.run_id)
        assert done.run.status == "completed", done.run
        [result] = [m for m in done.messages if m.kind == "tool_result"]
        assert result.is_error and refusal in result.content, result.content
        assert list(threads.services) == ["th_parent"]  # no child thread was made

    asyncio.run(scenario())


def test_a_handoff_passes_the_rest_of_the_run_to_another_agent() -> None:
    async def scenario() -> None:
        threads = Threads()
        triage = await threads.get("th_h")
        await triage.create(CreateThread(agent="triage", owner="ann"))
        answer = await triage.post_message(
            PostMessage(
                text="Where is order 1001?",
                owner="ann",
                wait=True,
                client_tools=[{"name": "get_location", "parameters": {"type": "object"}}],
            )
        )
        assert isinstance(answer, RunAnswer)
        assert answer.run.status == "completed", answer.run
        assert answer.run.agent["name"] == "support"
        # The support agent's tools, and the turn's client tool kept.
        assert {"query_order", "get_location"} <= set(answer.run.tools)
        assert "transfer_to_support" not in answer.run.tools
        # Each message says which agent wrote it.
        written = [
            (m.kind, m.agent)
            for m in answer.messages
            if m.kind != "user_text" and m.kind != "tool_result"
        ]
        assert written == [
            ("tool_call", "triage"),
            ("tool_call", "support"),
            ("assistant_text", "support"),
        ]
        # The run's log says where it was handed over (the run stopped inside the call:
        # its events are in its log, not published).
        run = await triage._store.run(answer.run.run_id)
        handed = [
            e.data.get("handoff")
            for e in await triage._store.events(run, -1, 100)
            if e.type == "step.completed" and e.data.get("handoff")
        ]
        assert handed == ["support"], handed

    asyncio.run(scenario())
