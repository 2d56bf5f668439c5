"""Agents as tools on the runtime: a parent run asks another agent, whose run goes on in
a child thread on the other actor host; the parent's host is SIGKILLed while the child
runs, and the parent still completes with the child's answer, once."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.conftest import Api, start_apps, wait_for
from tests.test_any_node import active_threads


def test_a_parent_completes_with_its_childs_answer_after_its_host_is_killed(
    stack_config, stacks
) -> None:
    *hosts, gateway = start_apps(stack_config(), stacks, "actors", "actors", "gateway")
    api = Api(gateway.url)
    # A child thread's id follows from its parent's run: new parents until one's child
    # lands on the other host.
    for _ in range(12):
        thread, run_id, child = _parent_waiting_for_its_child(api)
        holder = next(h for h in hosts if thread in active_threads(h))
        child_host = wait_for(
            lambda c=child: next((h for h in hosts if c in active_threads(h)), None),
            30,
            "the child to be active",
        )
        if child_host is not holder:
            break
    else:
        raise AssertionError("every child landed on its parent's host")

    holder.kill()
    killed_at = datetime.now(UTC)
    done = wait_for(
        lambda: (r := api.run(thread, run_id))["status"] in ("completed", "failed") and r,
        60,
        "the parent to complete",
    )
    assert done["status"] == "completed", done
    results = [m for m in api.messages(thread) if m["role"] == "tool"]
    assert [(m["content"], m["is_error"]) for m in results] == [
        ("TRK-1001 is with ParcelCo, due in 2 days.", False)
    ]
    assert api.messages(thread)[-1]["content"] == (
        "The researcher says: TRK-1001 is with ParcelCo, due in 2 days."
    )
    # Once: one child run, which ended after the parent's host was gone; the parent
    # counted it once.
    [child_run] = api.http.get(f"/v1/threads/{child}/runs").json()["runs"]
    assert datetime.fromisoformat(child_run["updated_at"]) > killed_at
    [recorded] = done["children"]
    assert (recorded["thread_id"], recorded["status"]) == (child, "completed")


def _parent_waiting_for_its_child(api: Api) -> tuple[str, str, str]:
    thread = api.create_thread(agent="slow-manager")
    started = api.http.post(
        f"/v1/threads/{thread}/messages",
        json={"content": "Where is my parcel?", "mode": "background"},
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["run"]["run_id"]
    waiting = wait_for(
        lambda: (r := api.run(thread, run_id))["required_action"] and r,
        30,
        "the parent to wait for its child",
    )
    [action] = waiting["required_action"]
    assert (action["type"], action["agent"]) == ("agent_run", "slow-researcher")
    return thread, run_id, action["thread_id"]
