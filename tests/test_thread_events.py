"""Thread events in process: which run transitions other services hear of, as what
CloudEvents, and which webhooks get them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac

from actors.engine.agents import AgentDefinition
from actors.engine.pauses import Approval
from actors.engine.webhooks import signature
from actors.threads.contract import CreateThread, Invalid, ResumeRun, ScheduleFollowup
from actors.threads.service import ThreadService
from actors.threads.state import RECORD_KEY
from actors.threads.store import ThreadStore
from tests.memory_effects import MemoryEffects, MemoryState
from tests.test_thread_service import ENGINE, SETTINGS, say

ENGINE.catalog.add(
    AgentDefinition(
        name="hooked",
        tools=["query_order"],
        approval_required=["query_order"],
        webhook={
            "url": "https://crm.example.com/all",
            "secret": "hooks",
            "allowed_urls": ["https://crm.example.com/threads/"],
        },
        script=[
            {"tool_calls": [{"name": "query_order", "arguments": {"order_id": "1001"}}]},
            "Shipped.",
        ],
    )
)


def hooked(webhook_url: str | None = None) -> tuple[ThreadService, MemoryEffects]:
    state = MemoryState()
    effects = MemoryEffects(state)
    service = ThreadService("th_e", ThreadStore(state), ENGINE, effects, SETTINGS)
    answer = asyncio.run(
        service.create(CreateThread(agent="hooked", owner="ann", webhook_url=webhook_url))
    )
    assert answer.outcome == "thread", answer
    return service, effects


def test_a_quick_run_is_heard_of_twice_created_and_completed() -> None:
    state = MemoryState()
    effects = MemoryEffects(state)
    service = ThreadService("th_q", ThreadStore(state), ENGINE, effects, SETTINGS)
    asyncio.run(service.create(CreateThread(agent="bench", owner="ann")))
    answer = say(service, wait=True)
    events = [event for event, _ in effects.announced]
    assert [e.type for e in events] == ["threadhost.run.created", "threadhost.run.completed"]
    run_id = answer.run.run_id
    assert [e.id for e in events] == [f"{run_id}.0", f"{run_id}.{answer.run.next_seq - 1}"]
    created, completed = (e.data for e in events)
    assert created == {
        "version": 1,
        "thread_id": "th_q",
        "run_id": run_id,
        "owner": "ann",
        "agent": "bench",
        "agent_version": 1,
        "status": "created",
        "seq": 0,
        "origin": "user",
    }
    assert completed["steps"] == 3 and completed["reason"] is None
    # No webhook for an agent that names none.
    assert all(deliveries == [] for _, deliveries in effects.announced)


def test_a_waiting_run_says_what_it_waits_for_and_webhooks_get_every_event() -> None:
    service, effects = hooked("https://crm.example.com/threads/th_e")
    answer = say(service, wait=True)
    assert answer.run.status == "requires_action"
    waiting, deliveries = effects.announced[-1]
    assert waiting.type == "threadhost.run.requires_action"
    assert waiting.data["required_action"] == [
        {
            "type": "approval",
            "tool": "query_order",
            "call_id": answer.run.required_action[0].call_id,
        }
    ]
    # The agent's webhook and the thread's, each with the event and how to sign it.
    assert [(d.url, d.secret, d.key) for d in deliveries] == [
        ("https://crm.example.com/all", "hooks", "signing-key"),
        ("https://crm.example.com/threads/th_e", "hooks", "signing-key"),
    ]
    assert all(d.event == waiting for d in deliveries)
    asyncio.run(
        service.resume_run(
            ResumeRun(
                run_id=answer.run.run_id,
                owner="ann",
                wait=True,
                actions=[Approval(call_id=answer.run.required_action[0].call_id, approved=True)],
            )
        )
    )
    assert effects.announced[-1][0].type == "threadhost.run.completed"


def test_a_thread_may_name_only_a_webhook_its_agent_allows() -> None:
    state = MemoryState()
    service = ThreadService("th_x", ThreadStore(state), ENGINE, MemoryEffects(state), SETTINGS)
    for agent, url in (("hooked", "https://attacker.example/x"), ("bench", "https://x.y/")):
        refused = asyncio.run(
            service.create(CreateThread(agent=agent, owner="ann", webhook_url=url))
        )
        assert isinstance(refused, Invalid) and refused.detail.startswith("webhook_url:")


def test_a_follow_up_that_comes_due_is_heard_of() -> None:
    service, effects = hooked()
    made = asyncio.run(
        service.followups.schedule_followup(
            ScheduleFollowup(when="PT1H", note="check", owner="ann")
        )
    )
    asyncio.run(service.reminder(f"followup.{made.followup.followup_id}", ""))
    fired = next(e for e, _ in effects.announced if e.type == "threadhost.followup.fired")
    assert fired.id == f"{made.followup.followup_id}.0"
    assert fired.data["note"] == "check" and fired.data["run_id"].startswith("run_")
    created = next(e for e, _ in effects.announced if e.type == "threadhost.run.created")
    assert created.data["origin"] == "followup"


def test_the_signature_is_the_standard_webhooks_one() -> None:
    body = b'{"id":"run_1.0"}'
    expected = base64.b64encode(
        hmac.new(b"k3y", b"run_1.0.1700000000." + body, hashlib.sha256).digest()
    ).decode()
    assert signature("k3y", "run_1.0", 1700000000, body) == f"v1,{expected}"


def test_announcements_are_committed_with_their_run_and_removed_once_sent() -> None:
    """Written in the commit that makes them, so a failure to send them (a sidecar down)
    or the host's death before they went out loses none: the next commit, or the thread's
    next activation on any host, sends what is still stored; what went out is removed."""
    state = MemoryState()
    effects = MemoryEffects(state, failing_announcements=True)
    service = ThreadService("th_o", ThreadStore(state), ENGINE, effects, SETTINGS)
    asyncio.run(service.create(CreateThread(agent="hooked", owner="ann")))
    first = say(service, wait=True).run.run_id  # waits for an approval
    ids = [e.id for e, _ in effects.announced]
    assert [e.type for e, _ in effects.announced] == [
        "threadhost.run.created",
        "threadhost.run.requires_action",
    ]
    # Not sent: stored and listed on the record, in the commit that made the run.
    assert state.committed[RECORD_KEY]["outbox"] == ids
    assert all(f"announce.{i}" in state.committed for i in ids)
    stored = state.committed[f"announce.{ids[0]}"]
    assert stored["deliveries"][0]["url"] == "https://crm.example.com/all"

    # The host dies; the thread is activated elsewhere: what is stored goes out again.
    effects = MemoryEffects(state)
    again = ThreadService("th_o", ThreadStore(state), ENGINE, effects, SETTINGS)
    asyncio.run(again.activated())
    assert [e.id for e, _ in effects.announced] == ids
    assert not any(key.startswith("announce.") for key in state.committed)
    # The next commit lists only what is not known to be sent.
    asyncio.run(
        again.resume_run(
            ResumeRun(
                run_id=first,
                owner="ann",
                wait=True,
                actions=[
                    Approval(
                        call_id=asyncio.run(again._store.run(first)).required_action[0].call_id,
                        approved=True,
                    )
                ],
            )
        )
    )
    listed = state.committed[RECORD_KEY]["outbox"]
    assert not set(ids) & set(listed) and listed  # the resumed run's own, sent already
    assert not any(key.startswith("announce.") for key in state.committed)
    # Sent once each: a third activation sends nothing again.
    effects = MemoryEffects(state)
    asyncio.run(ThreadService("th_o", ThreadStore(state), ENGINE, effects, SETTINGS).activated())
    assert effects.announced == []


def test_announcements_that_failed_go_out_with_the_next_commit() -> None:
    state = MemoryState()
    effects = MemoryEffects(state, failing_announcements=True)
    service = ThreadService("th_f", ThreadStore(state), ENGINE, effects, SETTINGS)
    asyncio.run(service.create(CreateThread(agent="bench", owner="ann")))
    say(service, wait=True)
    failed = [e.id for e, _ in effects.announced]
    effects.failing_announcements = False
    second = say(service, "And order 1002?", wait=True).run.run_id
    sent = [e.id for e, _ in effects.announced[len(failed) :]]
    assert sent[:2] == failed and sent[2:] == [f"{second}.0", sent[-1]]
    assert set(sent[2:] + failed) >= set(state.committed[RECORD_KEY]["outbox"])
    assert not any(key.startswith("announce.") for key in state.committed)


def test_a_steps_older_copy_of_the_record_keeps_the_announcements_listed() -> None:
    """A commit that lingers beside a slow step lists its announcements on the record;
    the step then saves the record it read before: the list stays the store's."""
    state = MemoryState()
    store = ThreadStore(state)
    service = ThreadService("th_l", store, ENGINE, MemoryEffects(state), SETTINGS)
    asyncio.run(service.create(CreateThread(agent="bench", owner="ann")))
    older = asyncio.run(store.record())
    asyncio.run(store.list_announcements(older, ["run_1.0"]))
    asyncio.run(store.save_record(older.model_copy(update={"message_count": 2})))
    assert store.latest.outbox == ["run_1.0"] and store.latest.message_count == 2
