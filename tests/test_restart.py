"""Stopping the whole stack and starting it again keeps every thread and its history."""

import os
import signal
import time

import httpx

from actors.dapr_host.watchdog import job_name
from tests.conftest import Api, conversation, wait_for
from threadhost.stack import Stack


def _talk_restart_talk(config, stacks) -> None:
    first = Stack(config)
    stacks.append(first)
    first.start()
    api = Api(first.api.url)
    thread = api.create_thread()
    api.say(thread, "before the restart")
    first.stop()

    second = Stack(config)
    stacks.append(second)
    second.start()
    api = Api(second.api.url)
    assert api.history(thread) == conversation("before the restart")
    api.say(thread, "after the restart")
    assert api.history(thread) == conversation("before the restart", "after the restart")


def test_sqlite_profile_keeps_threads_across_a_restart(stack_config, stacks) -> None:
    _talk_restart_talk(stack_config(), stacks)


def test_redis_profile_keeps_threads_across_a_restart(stack_config, stacks, redis_server) -> None:
    config = stack_config("redis", env={"THREADHOST_REDIS_HOST": redis_server})
    _talk_restart_talk(config, stacks)


def test_postgres_profile_keeps_threads_across_a_restart(
    stack_config, stacks, postgres_server
) -> None:
    config = stack_config("postgres", env={"THREADHOST_POSTGRES_URL": postgres_server})
    _talk_restart_talk(config, stacks)


def test_a_stack_killed_mid_run_comes_back_and_finishes_the_run_by_itself(
    stack_config, stacks
) -> None:
    """SIGKILL of every process while a run is in its model call: started again on the
    same data, the stack finishes the run without anyone asking. A crashed scheduler
    leaves its leadership lease behind, which alone would hold every reminder and job
    for about 21 s: the launcher revokes it (threadhost/scheduler_lease.py)."""
    config = stack_config()
    first = Stack(config)
    stacks.append(first)
    first.start()
    api = Api(first.api.url)
    thread = api.create_thread(agent="slow")
    run = api.http.post(
        f"/v1/threads/{thread}/messages",
        json={"content": "Where is order 1001?", "mode": "background"},
    ).json()["run"]["run_id"]
    wait_for(
        lambda: first.api.actor_stats()["steps_running"] == 1, 10, "the slow model call to start"
    )
    # Its watchdog is registered off the turn's critical path, some tens of milliseconds
    # after the step starts (a kill before that leaves the run until its thread is next
    # called: docs/deploy.md); this test is about what happens once it is.
    wait_for(
        lambda: (
            httpx.get(f"{first.api.dapr_url}/v1.0/jobs/{job_name(thread)}", timeout=5).status_code
            == 200
        ),
        10,
        "the run's watchdog",
    )
    for process in first.processes():
        os.kill(process.pid, signal.SIGKILL)
    first.stop()

    second = Stack(config)
    stacks.append(second)
    restarted = time.monotonic()
    second.start()
    api = Api(second.api.url)
    # Its watchdog job fires every 2 s here (tests/conftest.py) once the scheduler leads:
    # seconds after the start, not the 21 s of a dead lease (nor the start's own wait).
    wait_for(
        lambda: api.run(thread, run)["status"] == "completed",
        15 - (time.monotonic() - restarted),
        "the interrupted run to complete by itself",
    )
    assert [m["kind"] for m in api.messages(thread)] == [
        "user_text",
        "assistant_text",
        "tool_call",
        "tool_result",
        "assistant_text",
    ]
