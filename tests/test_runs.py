"""Runs on the real runtime: tool steps, and a run that survives the death of its host."""

import os
import signal

import httpx

from actors.dapr_host.watchdog import job_name
from tests.conftest import Api, start_apps, wait_for
from threadhost.stack import App


def test_the_support_agent_completes_a_run_with_two_tool_steps(stack) -> None:
    api = Api(stack.api.url)
    thread = api.create_thread(agent="support")
    turn = api.say(thread, "Where is my order 1001?")
    assert turn["run"]["status"] == "completed"
    assert turn["reply"] == "Order 1001 has shipped and is with the carrier; it is due in 2 days."
    assert [m["kind"] for m in turn["messages"]] == [
        "user_text",
        "assistant_text",
        "tool_call",
        "tool_result",
        "tool_call",
        "tool_result",
        "assistant_text",
    ]
    assert '"status":"shipped"' in turn["messages"][3]["content"]
    assert turn["run"]["steps"] == 5
    events = api.events(thread, turn["run"]["run_id"])
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events].count("step.completed") == 5


def _during_a_slow_run(stack) -> tuple[Api, str, str]:
    """A thread whose run is in its 3-second model call."""
    api = Api(stack.api.url)
    thread = api.create_thread(agent="slow")
    run = _start_run(stack.api, thread)["run_id"]
    wait_for(lambda: stack.api.actor_stats()["steps_running"] == 1, 10, "the slow step to start")
    return api, thread, run


def _post(api: Api, thread: str, **body) -> httpx.Response:
    return api.http.post(f"/v1/threads/{thread}/messages", json={"mode": "background", **body})


def _finished(api: Api, thread: str, run: str) -> dict:
    return wait_for(
        lambda: (r := api.run(thread, run))["status"] not in ("queued", "running") and r,
        30,
        f"run {run} to end",
    )


def test_a_message_during_a_run_can_be_refused_with_409(stack) -> None:
    api, thread, first = _during_a_slow_run(stack)
    response = _post(api, thread, content="hello?", on_active="reject")
    assert response.status_code == 409
    assert response.json()["run_id"] == first


def test_a_message_during_a_run_is_queued_and_runs_next(stack) -> None:
    api, thread, first = _during_a_slow_run(stack)
    second = _post(api, thread, content="And order 1002?").json()["run"]
    assert second["status"] == "queued"
    assert _finished(api, thread, first)["status"] == "completed"
    assert _finished(api, thread, second["run_id"])["status"] == "completed"
    users = [m["content"] for m in api.messages(thread) if m["role"] == "user"]
    assert users == ["Where is order 1001?", "And order 1002?"]
    assert api.messages(thread)[-1]["content"] == "Order 1001 has shipped."


def test_a_message_can_interrupt_the_run_in_progress(stack) -> None:
    api, thread, first = _during_a_slow_run(stack)
    second = _post(api, thread, content="Never mind.", on_active="interrupt").json()["run"]
    ended = _finished(api, thread, first)
    assert (ended["status"], ended["reason"]) == ("cancelled", "interrupted by a new message")
    assert _finished(api, thread, second["run_id"])["status"] == "completed"
    kinds = [m["kind"] for m in api.messages(thread)]
    # The interrupted step's tool call is answered, so the history stays valid context.
    assert kinds[:4] == ["user_text", "assistant_text", "tool_call", "tool_result"]
    assert api.messages(thread)[3]["is_error"] is True


def test_cancel_aborts_the_model_call_in_flight(stack) -> None:
    api, thread, first = _during_a_slow_run(stack)
    cancelled = api.http.post(f"/v1/threads/{thread}/runs/{first}/cancel").json()
    # Had the 3-second model call finished, its answer and tool call would be a step.
    assert cancelled["status"] == "cancelled" and cancelled["steps"] == 0
    assert [m["kind"] for m in api.messages(thread)] == ["user_text"]
    assert stack.api.actor_stats()["steps_discarded"] == 1
    events = api.events(thread, first)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[-1]["data"] == {"status": "cancelled", "reason": "cancelled by the caller"}
    assert (
        api.http.post(f"/v1/threads/{thread}/messages", json={"content": "hi again"}).json()["run"][
            "status"
        ]
        == "completed"
    )


def test_a_retried_turn_with_the_same_idempotency_key_returns_the_first_run(stack) -> None:
    api = Api(stack.api.url)
    thread = api.create_thread()
    headers = {"idempotency-key": "turn-7f3a"}
    first = api.http.post(
        f"/v1/threads/{thread}/messages", json={"content": "hello"}, headers=headers
    ).json()
    again = api.http.post(
        f"/v1/threads/{thread}/messages", json={"content": "hello"}, headers=headers
    ).json()
    assert again["run"]["run_id"] == first["run"]["run_id"]
    assert api.history(thread) == [("user", "hello"), ("assistant", "You said: hello")]


def test_a_running_run_has_a_watchdog_job_until_it_stops(stack) -> None:
    """The watchdog that resumes a run if its host dies is a job of the app, there while
    the run runs and gone once it has stopped."""
    api, thread, run = _during_a_slow_run(stack)
    job = f"{stack.api.dapr_url}/v1.0/jobs/{job_name(thread)}"
    assert httpx.get(job, timeout=10).status_code == 200
    wait_for(lambda: api.run(thread, run)["status"] == "completed", 30, "the run to complete")
    wait_for(
        lambda: httpx.get(job, timeout=10).status_code != 200, 10, "the watchdog job to be removed"
    )


def test_a_watchdog_reminder_left_by_an_older_version_goes_away(stack) -> None:
    """Before the watchdog was a job it was a reminder of the Thread actor: one left by an
    older version, firing on a thread with no run going on, removes itself."""
    api = Api(stack.api.url)
    thread = api.create_thread()
    reminder = f"{stack.api.dapr_url}/v1.0/actors/Thread/{thread}/reminders/watchdog"
    assert httpx.put(reminder, json={"dueTime": "2s", "period": "1s"}, timeout=10).status_code in (
        200,
        204,
    )
    assert httpx.get(reminder, timeout=10).status_code == 200
    wait_for(
        lambda: httpx.get(reminder, timeout=10).status_code != 200,
        15,
        "the old watchdog reminder to remove itself",
    )
    job = f"{stack.api.dapr_url}/v1.0/jobs/{job_name(thread)}"
    wait_for(
        lambda: httpx.get(job, timeout=10).status_code != 200,
        10,
        "no watchdog job for a thread without a run",
    )


def _start_run(app: App, thread: str, text: str = "Where is order 1001?") -> dict:
    """Starts a run through the sidecar, as another service would, without waiting."""
    answer = httpx.post(
        f"{app.dapr_url}/v1.0/actors/Thread/{thread}/method/PostMessage",
        json={"text": text},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["run"]


def _two_hosts_and_a_gateway(config, stacks) -> tuple[list[App], App]:
    *hosts, gateway = start_apps(config, stacks, "actors", "actors", "gateway")
    return hosts, gateway


def _stats(host: App) -> dict:
    return host.actor_stats()


def _holder_mid_step(hosts: list[App], thread: str) -> App:
    return wait_for(
        lambda: next(
            (h for h in hosts if thread in _stats(h)["active"] and _stats(h)["steps_running"] == 1),
            None,
        ),
        20,
        "a host to be in the middle of the slow model call",
    )


def _assert_completed_once(api: Api, thread: str, run_id: str) -> None:
    run = wait_for(
        lambda: (r := api.run(thread, run_id))["status"] == "completed" and r,
        60,
        "the run to complete on the surviving host",
    )
    messages = api.messages(thread)
    assert [m["kind"] for m in messages] == [
        "user_text",
        "assistant_text",
        "tool_call",
        "tool_result",
        "assistant_text",
    ]
    assert [m["content"] for m in messages if m["kind"] == "assistant_text"] == [
        "Looking it up.",
        "Order 1001 has shipped.",
    ]
    events = api.events(thread, run_id)
    assert [e["seq"] for e in events] == list(range(run["next_seq"]))
    statuses = [e["data"]["status"] for e in events if e["type"] == "run.status"]
    assert statuses == ["running", "completed"]
    assert [e["data"]["step"] for e in events if e["type"] == "step.completed"] == [1, 2, 3]


def test_a_run_completes_on_the_other_host_after_a_sigkill_mid_step(stack_config, stacks) -> None:
    hosts, gateway = _two_hosts_and_a_gateway(stack_config(), stacks)
    api = Api(gateway.url)
    thread = api.create_thread(agent="slow")
    run = _start_run(gateway, thread)
    holder = _holder_mid_step(hosts, thread)
    holder.kill()
    _assert_completed_once(api, thread, run["run_id"])
    survivor = next(h for h in hosts if h is not holder)
    assert thread in _stats(survivor)["active"]


def test_a_step_finishing_on_a_host_that_lost_the_thread_is_not_written(
    stack_config, stacks
) -> None:
    """The holder's sidecar freezes mid-step; the thread moves on and the run completes
    elsewhere; then the sidecar wakes up and the stale step tries to commit."""
    hosts, gateway = _two_hosts_and_a_gateway(stack_config(), stacks)
    api = Api(gateway.url)
    thread = api.create_thread(agent="slow")
    run = _start_run(gateway, thread)
    holder = _holder_mid_step(hosts, thread)
    os.kill(holder.sidecar.pid, signal.SIGSTOP)
    try:
        _assert_completed_once(api, thread, run["run_id"])
    finally:
        os.kill(holder.sidecar.pid, signal.SIGCONT)
    wait_for(
        lambda: _stats(holder)["steps_running"] == 0, 90, "the stale step on the old host to finish"
    )
    assert _stats(holder)["steps_discarded"] == 1
    _assert_completed_once(api, thread, run["run_id"])
