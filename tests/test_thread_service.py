"""The thread service in process, without a sidecar: what a turn commits, publishes and
asks of its runtime, on a dict-backed store."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actors.dapr_host.engine_setup import build_engine
from actors.engine.pauses import Approval
from actors.threads.contract import (
    Busy,
    CancelRun,
    CreateThread,
    GetRun,
    Invalid,
    NotFound,
    PostMessage,
    ResumeRun,
    RunAnswer,
    WatchdogFired,
)
from actors.threads.service import GATEWAY_KEYS, ThreadService
from actors.threads.state import run_key
from actors.threads.store import ThreadStore
from tests.memory_effects import MemoryEffects, MemoryState
from threadhost.common.settings import Settings

ROOT = Path(__file__).parent.parent
SETTINGS = Settings(
    agents_dirs=[
        str(ROOT / "agents"),
        str(ROOT / "tests" / "agents"),
        str(ROOT / "bench" / "agents"),
    ],
    max_concurrent_runs=5,
    step_chain_budget_ms=10_000,
)
ENGINE = build_engine(SETTINGS, {})
# A chain budget (and so a linger) shorter than the lingering agent's slow step.
SHORT_CHAIN = SETTINGS.model_copy(update={"step_chain_budget_ms": 100})


def thread(
    agent: str = "bench",
    settings: Settings = SETTINGS,
) -> tuple[ThreadService, MemoryEffects, MemoryState]:
    state = MemoryState()
    effects = MemoryEffects(state)
    service = ThreadService("th_1", ThreadStore(state), ENGINE, effects, settings)
    answer = asyncio.run(service.create(CreateThread(agent=agent, owner="ann")))
    assert answer.outcome == "thread"
    return service, effects, state


def say(service: ThreadService, text: str = "Where is order 1001?", **options) -> RunAnswer:
    answer = asyncio.run(service.post_message(PostMessage(text=text, owner="ann", **options)))
    assert isinstance(answer, RunAnswer), answer
    return answer


def test_a_waiting_turn_runs_inside_the_call_and_answers_with_its_messages() -> None:
    service, effects, state = thread()
    commits_before = state.commits
    answer = say(service, wait=True)
    assert answer.run.status == "completed"
    assert [m.kind for m in answer.messages] == [
        "user_text",
        "tool_call",
        "tool_result",
        "assistant_text",
    ]
    assert answer.message_count == 4
    # A checkpoint for the start and one per step, committed together when the quick
    # steps end (one transaction), before any of their events is seen.
    assert state.commits - commits_before == 1
    run = asyncio.run(service._store.run(answer.run.run_id))
    logged = asyncio.run(service._store.events(run, -1, 100))
    assert [e.type for e in logged] == [
        "run.created",
        "run.status",
        "step.completed",
        "step.completed",
        "step.completed",
        "run.status",
    ]
    assert [e.seq for e in logged] == list(range(6))
    # Nobody saw the run before it ended (start and end are one commit), so nobody
    # listens for its events: they stay in its log, not published to the gateways;
    # its transitions still go to other services.
    assert effects.published == []
    assert effects.flushed_text == [False]  # the answer carries the text
    assert [e.type for e, _ in effects.announced] == [
        "threadhost.run.created",
        "threadhost.run.completed",
    ]
    # No timer round trip, no read past the cache, and no watchdog: the run was never
    # in the store as running, so no host can die and leave it so.
    assert effects.asked == []
    assert effects.reads_past_cache == 0
    assert effects.stopped == [answer.run.run_id]
    assert effects.slots == [("ann", False)]


def test_a_slow_step_has_the_start_and_the_quick_steps_before_it_committed_beside_it() -> None:
    """A caller's run whose last model call takes a while: its start and first two steps
    are committed (and only then seen) while that call runs, not after it."""
    service, effects, state = thread("lingering", SHORT_CHAIN)

    async def main() -> RunAnswer:
        commits_before = state.commits
        turn = asyncio.create_task(
            service.post_message(PostMessage(text="Where is order 1001?", owner="ann", wait=True))
        )

        def committed_run() -> dict:
            return next(
                (v for k, v in state.committed.items() if k.startswith("run.") and "status" in v),
                {},
            )

        while committed_run().get("steps") != 2:  # the two quick steps, committed
            assert not turn.done()
            await asyncio.sleep(0.01)
        assert committed_run()["status"] == "running"
        assert effects.asked == ["watch"]  # it is in the store as running: watched
        assert not turn.done()  # the model is still answering
        seen = [e.type for m in effects.published for e in m.events]
        assert seen == ["run.created", "run.status", "step.completed", "step.completed"]
        commits_while_it_runs = state.commits - commits_before  # 1, or 2 on a busy host
        answer = await turn
        assert state.commits - commits_before == commits_while_it_runs + 1
        return answer

    answer = asyncio.run(asyncio.wait_for(main(), 10))
    assert answer.run.status == "completed" and answer.message_count == 4
    assert [seq for seq, _, _ in effects.events(answer.run.run_id)] == list(range(6))


def test_quick_steps_on_a_busy_host_stay_in_the_call() -> None:
    """Other work keeps the event loop busy: the quick steps wait their turn and take
    longer than the chain budget by the wall, but they are not slow steps. They stay in
    the caller's call, in one commit, with no timer and no watchdog."""
    service, effects, state = thread(settings=SHORT_CHAIN)

    async def main() -> tuple[RunAnswer, float]:
        done = False

        async def other_work() -> None:  # 15 ms of CPU each time it gets the loop
            while not done:
                until = time.thread_time() + 0.015
                while time.thread_time() < until:
                    pass
                await asyncio.sleep(0)

        commits_before = state.commits
        busy = asyncio.create_task(other_work())
        await asyncio.sleep(0)
        started = time.monotonic()
        answer = await service.post_message(
            PostMessage(text="Where is order 1001?", owner="ann", wait=True)
        )
        took = time.monotonic() - started
        done = True
        await busy
        assert state.commits - commits_before == 1
        return answer, took

    answer, took = asyncio.run(asyncio.wait_for(main(), 10))
    assert took > SHORT_CHAIN.step_chain_budget_ms / 1000  # by the wall, past the budget
    assert answer.run.status == "completed" and answer.message_count == 4
    assert effects.asked == []  # no chain_step, no watchdog


def test_a_turn_nobody_waits_for_is_chained_and_finishes_in_later_turns() -> None:
    service, effects, _ = thread()
    answer = say(service)
    assert answer.run.status == "running" and answer.messages is None
    assert effects.asked == ["watch", "chain_step"]
    assert effects.flushed_at == [len(effects.published)]  # a stream sees the run begin now
    asyncio.run(service.take_steps())
    assert effects.flushed_text == [True, True]  # and the text of every step
    run = asyncio.run(
        service.reads.get_run(GetRun(run_id=answer.run.run_id, owner="ann", with_messages=True))
    )
    assert run.run.status == "completed" and len(run.messages) == 4
    assert effects.reads_past_cache == 1  # a turn of its own confirms the run first


def test_the_watchdog_is_cleared_by_the_run_that_set_it_or_when_it_finds_nothing() -> None:
    service, effects, _ = thread("lingering", SHORT_CHAIN)  # committed during its slow step
    say(service, wait=True)
    assert effects.asked == ["watch", "unwatch"]
    asyncio.run(service.watchdog_fired(WatchdogFired()))  # one left over by a host that died
    assert effects.asked[-1] == "unwatch"


def test_the_watchdog_restarts_a_running_run() -> None:
    service, effects, _ = thread()
    say(service)
    asyncio.run(service.watchdog_fired(WatchdogFired()))
    assert effects.asked[-1] == "chain_step"


def test_a_run_taken_over_before_a_model_call_counts_that_call_as_an_estimate() -> None:
    """Its previous host may have been in the middle of the call (billed, answer lost):
    the new host records what the call's request would cost, marked as an estimate, once,
    and the run goes on to count the real call too."""
    service, effects, state = thread()
    run_id = say(service).run.run_id  # started; its first step (a model call) is next
    heir_effects = MemoryEffects(state)
    heir = ThreadService("th_1", ThreadStore(state), ENGINE, heir_effects, SETTINGS)
    asyncio.run(heir.activated())
    assert heir_effects.asked == ["chain_step"]
    [lost] = state.committed[run_key(run_id)]["model_calls"]
    assert lost["estimated"] is True and lost["step"] == 0
    assert lost["usage"]["input_tokens"] > 5 and lost["usage"]["output_tokens"] == 0
    asyncio.run(heir.take_steps())
    run = state.committed[run_key(run_id)]
    assert run["status"] == "completed"
    assert [c["estimated"] for c in run["model_calls"]] == [True, False, False]
    assert run["usage"]["input_tokens"] == sum(
        c["usage"]["input_tokens"] for c in run["model_calls"]
    )


def test_a_run_taken_over_before_a_tool_step_counts_nothing_more() -> None:
    one_step_a_turn = SETTINGS.model_copy(update={"step_chain_budget_ms": 0})
    service, _, state = thread(settings=one_step_a_turn)
    run_id = say(service).run.run_id
    asyncio.run(service.take_steps())  # the model step; the tool call is next
    [call] = state.committed[run_key(run_id)]["model_calls"]
    assert state.committed[run_key(run_id)]["status"] == "running"
    heir = ThreadService("th_1", ThreadStore(state), ENGINE, MemoryEffects(state), one_step_a_turn)
    asyncio.run(heir.activated())
    assert state.committed[run_key(run_id)]["model_calls"] == [call]


def test_a_step_whose_run_moved_on_elsewhere_is_thrown_away() -> None:
    service, effects, state = thread()
    answer = say(service)
    stored = dict(state.committed[run_key(answer.run.run_id)])
    effects.committed_elsewhere[run_key(answer.run.run_id)] = {**stored, "steps": 1, "next_seq": 3}
    before, commits = dict(state.committed), state.commits
    asyncio.run(service.take_steps())
    assert state.committed == before and state.commits == commits
    assert not state.pending


def test_on_active_rejects_queues_or_interrupts() -> None:
    service, effects, _ = thread()
    first = say(service).run.run_id
    busy = asyncio.run(
        service.post_message(PostMessage(text="again", owner="ann", on_active="reject"))
    )
    assert isinstance(busy, Busy) and busy.run_id == first
    queued = say(service, "later").run
    assert queued.status == "queued"
    interrupting = say(service, "now", on_active="interrupt", wait=True)
    assert interrupting.run.status == "completed"
    runs = {
        r: asyncio.run(service.reads.get_run(GetRun(run_id=r, owner="ann"))).run.status
        for r in (first, queued.run_id)
    }
    # "now" ran first; "later" started when it ended, in a turn of its own.
    assert runs == {first: "cancelled", queued.run_id: "running"}
    assert effects.asked[-1] == "chain_step"


def test_a_repeated_key_answers_with_the_first_run_and_gateway_keys_stay_few() -> None:
    service, _, state = thread()
    first = say(service, idempotency_key="k-1", wait=True)
    again = say(service, idempotency_key="k-1", wait=True)
    assert again.replayed and again.run.run_id == first.run.run_id
    assert again.messages == first.messages
    for n in range(GATEWAY_KEYS + 3):
        say(service, idempotency_key=f"turn:{n}", wait=True)
    kept = state.committed["thread"]["idempotency"]
    assert "k-1" in kept
    assert sorted(k for k in kept if k.startswith("turn:")) == [
        f"turn:{n}" for n in range(3, GATEWAY_KEYS + 3)
    ]


def test_a_paused_run_holds_no_slot_and_resumes_inside_the_waiting_call() -> None:
    service, effects, _ = thread("approvals")
    paused = say(service, "Cancel order 1002", wait=True)
    assert paused.run.status == "requires_action"
    assert effects.slots == [("ann", False)]
    call = paused.run.required_action[0].call_id
    resumed = asyncio.run(
        service.resume_run(
            ResumeRun(
                run_id=paused.run.run_id,
                owner="ann",
                wait=True,
                actions=[Approval(call_id=call, approved=True)],
            )
        )
    )
    assert resumed.run.status == "completed"
    assert resumed.messages[-1].text == "That is settled."
    assert "chain_step" not in effects.asked
    # The pause was in the store, where a stream may have found the run: what the
    # resumption adds is published (what came before the pause is in the log only).
    published = [kind for _, kind, _ in effects.events(paused.run.run_id)]
    assert published and published[-1] == "run.status"
    assert min(seq for seq, _, _ in effects.events(paused.run.run_id)) == resumed.first_seq


def test_others_and_bad_requests_change_nothing() -> None:
    service, _, state = thread()
    before = dict(state.committed)
    stranger = asyncio.run(service.post_message(PostMessage(text="hi", owner="bob")))
    assert isinstance(stranger, NotFound) and stranger.http_status == 404
    unknown = asyncio.run(
        service.post_message(PostMessage(text="hi", owner="ann", model="nosuch:model"))
    )
    assert isinstance(unknown, Invalid)
    gone = asyncio.run(service.cancel_run(CancelRun(run_id="run_x", owner="ann")))
    assert gone.outcome == "run_not_found" and "run_x" in gone.detail
    assert state.committed == before


@pytest.mark.parametrize(
    "payload", [{"text": "  "}, {"content": "wrong field"}, {"text": 42}, {"text": "a\u0000b"}]
)
def test_the_contract_refuses_what_a_direct_caller_gets_wrong(payload: dict) -> None:
    with pytest.raises(ValueError):
        PostMessage.model_validate(payload)


def test_every_answer_crosses_as_json_and_comes_back_the_same() -> None:
    service, _, _ = thread("approvals")
    paused = say(service, "Cancel order 1002", wait=True)
    raw = paused.model_dump_json().encode()
    assert PostMessage.answers.validate_json(raw) == paused


def test_the_service_the_contract_and_the_engine_import_no_dapr() -> None:
    code = (
        "import sys, actors.threads.service, actors.threads.contract, actors.engine.loop; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dapr'))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert found == "[]"


def test_a_run_a_commit_leaves_running_without_a_watchdog_fails_its_call() -> None:
    """A caller's run whose model call lingers: the commit that leaves it running
    registers its watchdog before the call goes on; on a host whose sidecar has gone that
    fails the call (its caller tries again elsewhere), rather than answer while nothing
    would wake the run if this host went."""
    service, effects, _ = thread("lingering", SHORT_CHAIN)

    async def sidecar_gone() -> None:
        raise ConnectionError("cannot reach the sidecar")

    effects.watched = sidecar_gone  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        asyncio.run(
            asyncio.wait_for(
                service.post_message(
                    PostMessage(text="Where is order 1001?", owner="ann", wait=True)
                ),
                30,
            )
        )


def test_a_threads_events_come_run_after_run_and_a_queued_run_after_the_one_it_waits_for() -> None:
    from actors.threads.contract import ReadThreadEvents, RunNotFound, ThreadEventsAnswer
    from actors.threads.reads import ThreadReads

    service, _, state = thread("asker")
    reads = ThreadReads("th_1", ThreadStore(state))

    def read(after: str | None) -> ThreadEventsAnswer:
        answer = asyncio.run(reads.thread_events(ReadThreadEvents(after=after, owner="ann")))
        assert isinstance(answer, ThreadEventsAnswer)
        return answer

    assert read(None).cursor == "" and read("").events == []
    asked = asyncio.run(service.post_message(PostMessage(text="cancel it", owner="ann", wait=True)))
    assert isinstance(asked, RunAnswer) and asked.run.status == "requires_action"
    queued = asyncio.run(service.post_message(PostMessage(text="and this", owner="ann")))
    assert isinstance(queued, RunAnswer) and queued.run.status == "queued"
    first, second = asked.run.run_id, queued.run.run_id
    waiting = read("")
    # The queued run is told of only once the run it waits for has ended.
    assert {item.run_id for item in waiting.events} == {first}
    # From now: from the start of the run going on.
    assert [item.id for item in read(None).events] == [item.id for item in waiting.events]
    resumed = asyncio.run(
        service.resume_run(
            ResumeRun(
                run_id=first,
                owner="ann",
                actions=[
                    {
                        "type": "input",
                        "call_id": asked.run.required_action[0].call_id,
                        "answer": "1001",
                    }
                ],
                wait=True,
            )
        )
    )
    assert isinstance(resumed, RunAnswer) and resumed.run.status == "completed"
    rest = read(waiting.cursor)
    runs = [item.run_id for item in rest.events]
    assert runs[0] == first and second in runs
    assert runs.index(second) > max(i for i, r in enumerate(runs) if r == first)
    # Page by page with a limit, the same events.
    paged, cursor = [], ""
    while True:
        page = asyncio.run(
            reads.thread_events(ReadThreadEvents(after=cursor, owner="ann", limit=2))
        )
        assert isinstance(page, ThreadEventsAnswer)
        paged += [item.id for item in page.events]
        cursor = page.cursor
        if not page.more:
            break
    assert paged == [item.id for item in read("").events]
    assert isinstance(
        asyncio.run(reads.thread_events(ReadThreadEvents(after="run_x.1", owner="ann"))),
        RunNotFound,
    )
    assert isinstance(
        asyncio.run(reads.thread_events(ReadThreadEvents(after="", owner="bob"))), NotFound
    )


def test_a_fork_is_its_owners_alone_and_made_once() -> None:
    from actors.threads.contract import ForkThread, ThreadAnswer

    source, _, state = thread()
    said = asyncio.run(source.post_message(PostMessage(text="hello", owner="ann", wait=True)))
    assert isinstance(said, RunAnswer) and said.message_count
    end = said.message_count
    fork_state = MemoryState()
    fork = ThreadService(
        "th_2", ThreadStore(fork_state), ENGINE, MemoryEffects(fork_state), SETTINGS
    )

    def ask(owner: str, index: int = end):  # type: ignore[no-untyped-def]
        request = ForkThread(source="th_1", message_index=index, owner=owner)
        return asyncio.run(fork.forks.fork(request, ThreadStore(state)))

    assert isinstance(ask("bob"), NotFound) and fork_state.committed == {}
    made = ask("ann")
    assert isinstance(made, ThreadAnswer) and made.created
    repeat = ask("ann")
    assert isinstance(repeat, ThreadAnswer) and not repeat.created
    assert repeat.thread.id == made.thread.id
    # The id is this fork's: another fork (another point) or another owner is not it.
    assert isinstance(ask("ann", index=0), NotFound)
    assert isinstance(ask("bob"), NotFound)
