"""Follow-ups in process, on a dict-backed store: what `when` accepts, an agent that
schedules its own, the owner's API, and what happens when one comes due."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from actors.engine.followups import FollowupError, new_followup
from actors.threads.contract import (
    CancelFollowup,
    CreateThread,
    Done,
    FollowupAnswer,
    FollowupNotFound,
    Invalid,
    ListFollowups,
    PostMessage,
    ReadHistory,
    ScheduleFollowup,
    TooManyFollowups,
)
from actors.threads.service import ThreadService
from actors.threads.store import ThreadStore
from tests.memory_effects import MemoryEffects, MemoryState
from tests.test_thread_service import ENGINE, SETTINGS, say

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("when", "kind", "due"),
    [
        ("2026-11-24T09:00:00+01:00", "once", datetime(2026, 11, 24, 8, 0, tzinfo=UTC)),
        ("2026-11-24T09:00:00Z", "once", datetime(2026, 11, 24, 9, 0, tzinfo=UTC)),
        ("PT10M", "once", NOW + timedelta(minutes=10)),
        ("P1DT2H", "once", NOW + timedelta(days=1, hours=2)),
        ("every PT1H", "every", NOW + timedelta(hours=1)),
        ("cron 0 9 * * 1-5", "cron", datetime(2026, 11, 24, 9, 0, tzinfo=UTC)),
    ],
)
def test_when_is_an_instant_a_delay_an_interval_or_a_cron_expression(when, kind, due) -> None:
    followup = new_followup(when, "note 🌱", "api", NOW)
    assert (followup.kind, followup.due_at, followup.when, followup.note) == (
        kind,
        due,
        when,
        "note 🌱",
    )


def test_recurring_follow_ups_move_on_and_one_offs_end() -> None:
    hourly = new_followup("every PT1H", "n", "api", NOW)
    later = hourly.after_firing(hourly.due_at)
    assert later.due_at == NOW + timedelta(hours=2) and later.fired == 1
    # Came due late (the host was down a day): the next one is an interval from now.
    late = hourly.after_firing(NOW + timedelta(days=1))
    assert late.due_at == NOW + timedelta(days=1, hours=1)
    weekdays = new_followup("cron 0 9 * * 1-5", "n", "api", datetime(2026, 11, 27, 10, tzinfo=UTC))
    assert weekdays.after_firing(weekdays.due_at).due_at == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert new_followup("PT1M", "n", "api", NOW).after_firing(NOW) is None


@pytest.mark.parametrize(
    ("when", "says"),
    [
        ("2026-11-24T09:00:00", "offset"),
        ("2026-11-22T09:00:00Z", "passed"),
        ("tomorrow", "an instant with its offset"),
        ("every PT30S", "at least a minute"),
        ("cron 61 * * * *", "cron"),
        ("PT0S", "at least a second"),
        ("P", "an instant"),
        ("P500D", "400 days"),
        ("every 1h", "ISO 8601 duration"),
        ("PT999999999999999999H", "400 days"),
        ("every P99999999999W", "400 days"),
    ],
)
def test_a_when_that_cannot_be_read_is_refused_saying_why(when, says) -> None:
    with pytest.raises(FollowupError, match=says) as refused:
        new_followup(when, "n", "api", NOW)
    assert str(refused.value).startswith("when:")


def keeper() -> tuple[ThreadService, MemoryEffects, MemoryState]:
    state = MemoryState()
    effects = MemoryEffects(state)
    service = ThreadService("th_k", ThreadStore(state), ENGINE, effects, SETTINGS)
    asyncio.run(service.create(CreateThread(agent="keeper", owner="ann")))
    return service, effects, state


def test_an_agent_schedules_a_follow_up_and_its_run_comes_once() -> None:
    service, effects, state = keeper()
    answer = say(service, "Tell me when order 1001 ships", wait=True)
    assert answer.run.status == "completed"
    result = next(m for m in answer.messages if m.kind == "tool_result")
    assert not result.is_error and '"when": "PT8S"' in result.content
    [followup] = asyncio.run(service.followups.list_followups(ListFollowups(owner="ann"))).followups
    assert followup.created_by == "agent"
    # Its reminder was registered before the step that scheduled it was committed.
    name = f"followup.{followup.followup_id}"
    assert timedelta(seconds=6) < effects.reminders[name] <= timedelta(seconds=8)

    asyncio.run(service.reminder(name, ""))
    asyncio.run(service.reminder(name, ""))  # delivered twice: still one run
    assert effects.asked.count("chain_step") == 1  # its steps follow in a later turn
    asyncio.run(service.take_steps())
    history = asyncio.run(service.reads.read_history(ReadHistory(owner="ann", limit=100)))
    notes = [m for m in history.messages if m.kind == "user_text" and m.origin == "followup"]
    assert [m.text for m in notes] == ["Check whether order 1001 shipped."]
    assert history.messages[-1].text == "Following up: Check whether order 1001 shipped."
    assert asyncio.run(service.followups.list_followups(ListFollowups(owner="ann"))).followups == []


def test_the_owner_schedules_lists_and_cancels_follow_ups() -> None:
    service, effects, _ = keeper()
    made = asyncio.run(
        service.followups.schedule_followup(
            ScheduleFollowup(when="every P1D", note="Daily check-in", owner="ann")
        )
    )
    assert isinstance(made, FollowupAnswer) and made.followup.created_by == "api"
    assert isinstance(
        asyncio.run(
            service.followups.schedule_followup(
                ScheduleFollowup(when="yesterday", note="x", owner="ann")
            )
        ),
        Invalid,
    )
    # Someone else's thread: as if it did not exist.
    assert (
        asyncio.run(service.followups.list_followups(ListFollowups(owner="bob"))).outcome
        == "not_found"
    )
    name = f"followup.{made.followup.followup_id}"
    assert name in effects.reminders
    # A recurring one fires, runs, and stays scheduled for the next day.
    asyncio.run(service.reminder(name, ""))
    [kept] = asyncio.run(service.followups.list_followups(ListFollowups(owner="ann"))).followups
    assert kept.fired == 1 and kept.due_at > made.followup.due_at
    assert isinstance(
        asyncio.run(
            service.followups.cancel_followup(
                CancelFollowup(followup_id=kept.followup_id, owner="ann")
            )
        ),
        Done,
    )
    assert name not in effects.reminders
    assert isinstance(
        asyncio.run(
            service.followups.cancel_followup(
                CancelFollowup(followup_id=kept.followup_id, owner="ann")
            )
        ),
        FollowupNotFound,
    )
    # A cancelled one's reminder, had it fired anyway, does nothing.
    runs_before = asyncio.run(service._store.record()).runs_created
    asyncio.run(service.reminder(name, ""))
    assert asyncio.run(service._store.record()).runs_created == runs_before


def test_a_thread_has_a_bounded_number_of_follow_ups() -> None:
    service, _, _ = keeper()
    for n in range(SETTINGS.max_followups):
        asyncio.run(
            service.followups.schedule_followup(
                ScheduleFollowup(when="P1D", note=f"n{n}", owner="ann")
            )
        )
    assert isinstance(
        asyncio.run(
            service.followups.schedule_followup(
                ScheduleFollowup(when="P1D", note="one more", owner="ann")
            )
        ),
        TooManyFollowups,
    )
    answer = say(service, "Remind me", wait=True)  # the agent's tool is refused too
    result = next(m for m in answer.messages if m.kind == "tool_result")
    assert result.is_error and "cancel one first" in result.content


def test_a_follow_up_due_during_a_run_follows_the_threads_policy() -> None:
    for policy, runs in (("enqueue", 2), ("reject", 1)):
        state = MemoryState()
        service = ThreadService(
            f"th_{policy}", ThreadStore(state), ENGINE, MemoryEffects(state), SETTINGS
        )
        asyncio.run(service.create(CreateThread(agent="keeper", owner="ann", on_active=policy)))
        made = asyncio.run(
            service.followups.schedule_followup(
                ScheduleFollowup(when="PT1H", note="later", owner="ann")
            )
        )
        asyncio.run(service.post_message(PostMessage(text="hi", owner="ann")))  # runs on
        asyncio.run(service.reminder(f"followup.{made.followup.followup_id}", ""))
        assert asyncio.run(service._store.record()).runs_created == runs, policy


def test_deleting_the_thread_drops_its_follow_ups_reminders() -> None:
    from actors.threads.contract import DeleteThread

    service, effects, _ = keeper()
    asyncio.run(
        service.followups.schedule_followup(ScheduleFollowup(when="P1D", note="x", owner="ann"))
    )
    assert effects.reminders
    asyncio.run(service.delete(DeleteThread(owner="ann")))
    assert not effects.reminders


def test_an_owner_has_a_bounded_number_of_follow_ups_across_threads() -> None:
    """The owner already has 999 elsewhere, of at most 1,000: one more, then none, from
    the API and from the agent's tool alike; a cancelled one frees its place."""
    service, effects, _ = keeper()
    effects.owner_followups["other threads"] = SETTINGS.max_followups_per_owner - 1
    first = asyncio.run(
        service.followups.schedule_followup(ScheduleFollowup(when="P1D", note="one", owner="ann"))
    )
    assert isinstance(first, FollowupAnswer)
    refused = asyncio.run(
        service.followups.schedule_followup(ScheduleFollowup(when="P2D", note="two", owner="ann"))
    )
    assert isinstance(refused, TooManyFollowups) and "1000" in refused.detail
    answer = say(service, "Tell me when order 1001 ships", wait=True)
    result = next(m for m in answer.messages if m.kind == "tool_result")
    assert result.is_error and "across their conversations" in result.content
    assert (
        len(asyncio.run(service.followups.list_followups(ListFollowups(owner="ann"))).followups)
        == 1
    )
    asyncio.run(
        service.followups.cancel_followup(
            CancelFollowup(followup_id=first.followup.followup_id, owner="ann")
        )
    )
    assert effects.owner_followups["this"] == 0  # told, after the commit
    assert isinstance(
        asyncio.run(
            service.followups.schedule_followup(
                ScheduleFollowup(when="P2D", note="two", owner="ann")
            )
        ),
        FollowupAnswer,
    )


def test_a_follow_up_due_while_its_owner_has_no_run_slot_is_put_off_not_queued() -> None:
    settings = SETTINGS.model_copy(update={"max_concurrent_runs": 1})
    state = MemoryState()
    effects = MemoryEffects(state, slots_free=0)
    service = ThreadService("th_slots", ThreadStore(state), ENGINE, effects, settings)
    asyncio.run(service.create(CreateThread(agent="keeper", owner="ann")))
    once = asyncio.run(
        service.followups.schedule_followup(ScheduleFollowup(when="PT1H", note="once", owner="ann"))
    ).followup
    daily = asyncio.run(
        service.followups.schedule_followup(
            ScheduleFollowup(when="every P1D", note="daily", owner="ann")
        )
    ).followup
    for followup in (once, daily):
        asyncio.run(service.reminder(f"followup.{followup.followup_id}", ""))
    record = asyncio.run(service._store.record())
    assert record.runs_created == 0 and record.queue == []  # no run, none queued
    kept = {f.note: f for f in record.followups}
    assert kept["once"].deferred == 1  # a minute later
    assert kept["once"].due_at - datetime.now(UTC) <= timedelta(minutes=1)
    assert kept["daily"].fired == 1 and kept["daily"].deferred == 0  # its next day
    skipped = [
        e.data["skipped"] for e, _ in effects.announced if e.type == "threadhost.followup.fired"
    ]
    assert skipped == ["its owner has every run slot taken"] * 2
    # A slot frees up: the put-off one starts its run when it comes due again.
    effects.slots_free = None
    asyncio.run(service.reminder(f"followup.{once.followup_id}", ""))
    assert asyncio.run(service._store.record()).runs_created == 1


def test_follow_ups_never_pile_up_runs_behind_a_waiting_run() -> None:
    """A run waits for days (an approval); a follow-up every minute queues one run, not
    one a minute."""
    state = MemoryState()
    service = ThreadService("th_pile", ThreadStore(state), ENGINE, MemoryEffects(state), SETTINGS)
    asyncio.run(service.create(CreateThread(agent="approvals", owner="ann")))
    asyncio.run(service.post_message(PostMessage(text="Cancel order 1002", owner="ann", wait=True)))
    assert asyncio.run(service._store.record()).active_run is not None
    every = asyncio.run(
        service.followups.schedule_followup(
            ScheduleFollowup(when="every PT1M", note="check", owner="ann")
        )
    ).followup
    for _ in range(5):
        asyncio.run(service.reminder(f"followup.{every.followup_id}", ""))
    record = asyncio.run(service._store.record())
    assert len(record.queue) == 1
    [kept] = record.followups
    assert kept.fired == 5


def test_recurring_follow_ups_due_together_spread_over_the_jitter() -> None:
    """A daily follow-up at 09:00 on many threads: their reminders come due over the
    jitter, not in one second; a one-time one comes due at its own time."""
    settings = SETTINGS.model_copy(update={"followup_jitter_seconds": 30})
    late: list[float] = []
    for n in range(100):
        state = MemoryState()
        effects = MemoryEffects(state)
        service = ThreadService(f"th_{n}", ThreadStore(state), ENGINE, effects, settings)
        asyncio.run(service.create(CreateThread(agent="keeper", owner="ann")))
        for when in ("cron 0 9 * * *", "PT1H"):
            made = asyncio.run(
                service.followups.schedule_followup(
                    ScheduleFollowup(when=when, note="check in", owner="ann")
                )
            )
            name = f"followup.{made.followup.followup_id}"
            wait = effects.reminders[name] - (made.followup.due_at - datetime.now(UTC))
            late.append(wait.total_seconds())
    daily, once = late[0::2], late[1::2]
    assert all(-1 < s < 31 for s in daily) and max(daily) - min(daily) > 20
    assert len({round(s) for s in daily}) > 20
    assert all(abs(s) < 1 for s in once)
