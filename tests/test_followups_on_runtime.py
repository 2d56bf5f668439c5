"""Follow-ups on the runtime: each is a Dapr actor reminder, so it comes due on whichever
host has the thread then, after the thread was deactivated and the host that registered
it was SIGKILLed; and the owner's API, on the embedded stack."""

from __future__ import annotations

from tests.conftest import FAST_IDLE, Api, wait_for
from tests.test_any_node import active_threads


def test_a_follow_up_comes_once_after_its_host_is_killed(stack_config, stacks) -> None:
    from tests.conftest import start_apps

    *hosts, gateway = start_apps(stack_config(env=FAST_IDLE), stacks, "actors", "actors", "gateway")
    api = Api(gateway.url)
    thread = api.create_thread(agent="keeper")
    turn = api.http.post(
        f"/v1/threads/{thread}/messages", json={"content": "Tell me when order 1001 ships"}
    )
    assert turn.status_code == 200 and turn.json()["run"]["status"] == "completed", turn.text
    [followup] = api.http.get(f"/v1/threads/{thread}/followups").json()["followups"]
    assert (followup["created_by"], followup["when"]) == ("agent", "PT8S")
    holder = next(h for h in hosts if thread in active_threads(h))
    other = next(h for h in hosts if h is not holder)
    wait_for(lambda: thread not in active_threads(holder), 30, "the thread to deactivate")
    holder.kill()

    # Nobody calls the thread: its reminder wakes it on the host that is left.
    wait_for(lambda: thread in active_threads(other), 60, "the follow-up to come due")
    runs = wait_for(
        lambda: (
            (r := api.http.get(f"/v1/threads/{thread}/runs").json()["runs"])
            and len(r) == 2
            and r[0]["status"] == "completed"
            and r
        ),
        30,
        "the follow-up's run to complete",
    )
    assert [r["status"] for r in runs] == ["completed", "completed"]
    messages = api.messages(thread)
    notes = [m for m in messages if m["origin"] == "followup"]
    assert [(m["role"], m["content"]) for m in notes] == [
        ("system", "Check whether order 1001 shipped.")
    ]
    assert messages[-1]["content"] == "Following up: Check whether order 1001 shipped."
    assert api.http.get(f"/v1/threads/{thread}/followups").json()["followups"] == []


def test_the_owner_schedules_and_cancels_follow_ups(stack, stacks) -> None:
    api = Api(stack.api.url)
    thread = api.create_thread()
    soon = api.http.post(
        f"/v1/threads/{thread}/followups", json={"when": "PT2S", "note": "Daily check-in 🌱"}
    )
    assert soon.status_code == 201, soon.text
    later = api.http.post(
        f"/v1/threads/{thread}/followups",
        json={"when": "cron 0 9 * * *", "note": "Morning summary"},
    ).json()
    refused = api.http.post(
        f"/v1/threads/{thread}/followups", json={"when": "2026-11-24T09:00:00", "note": "x"}
    )
    assert refused.status_code == 422 and "offset" in refused.json()["detail"]
    gone = api.http.delete(f"/v1/threads/{thread}/followups/{later['followup_id']}")
    assert gone.status_code == 204
    assert (
        api.http.delete(f"/v1/threads/{thread}/followups/{later['followup_id']}").status_code == 404
    )
    wait_for(
        lambda: any(m["origin"] == "followup" for m in api.messages(thread)),
        30,
        "the follow-up to come due",
    )
    wait_for(lambda: api.messages(thread)[-1]["role"] == "assistant", 30, "its answer")
    assert api.history(thread) == [
        ("system", "Daily check-in 🌱"),
        ("assistant", "Following up: Daily check-in 🌱"),
    ]
    assert api.http.get(f"/v1/threads/{thread}/followups").json()["followups"] == []
