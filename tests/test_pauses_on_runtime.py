"""Runs that wait, on the real runtime: paused through one gateway replica, resumed
through another after the whole stack restarted; deadlines that outlive their host; bad
resumes that change nothing; erase."""

import json
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from actors.dapr_host.watchdog import job_name
from tests.conftest import (
    FAST_IDLE,
    TEST_AGENTS,
    Api,
    conversation,
    postgres_bin,
    start_apps,
    stored_rows,
    wait_for,
)
from threadhost.runtime import PROJECT_ROOT
from threadhost.stack import Stack

AGENTS = Path(__file__).parent / "agents"
LOCATION = {
    "name": "get_location",
    "description": "Where the user is",
    "parameters": {"type": "object", "properties": {"precision": {"type": "string"}}},
}

# agent, the turn's body, the answer to the pause, the history the run ends with.
PAUSES = {
    "approval": (
        "approvals",
        {"content": "Please cancel order 1002."},
        {"type": "approval", "approved": True},
        [
            ("user", "Please cancel order 1002."),
            ("assistant", "Cancelling order 1002."),
            ("assistant", '{"order_id": "1002"}'),
            ("assistant", '{"order_id": "1002", "reason": "changed my mind"}'),
            ("tool", "query_order"),
            ("tool", "cancel_order"),
            ("assistant", "That is settled."),
        ],
    ),
    "input": (
        "asker",
        {"content": "Cancel my order."},
        {"type": "input", "answer": "Order 1002"},
        [
            ("user", "Cancel my order."),
            ("assistant", '{"question": "Which order do you mean?"}'),
            ("tool", "Order 1002"),
            ("assistant", "Thanks, I have noted it."),
        ],
    ),
    "client_tool": (
        "locator",
        {"content": "Weather?", "client_tools": [LOCATION]},
        {"type": "tool_result", "output": "Berlin"},
        [
            ("user", "Weather?"),
            ("assistant", '{"precision": "city"}'),
            ("tool", "Berlin"),
            ("assistant", "Here is the weather where you are."),
        ],
    ),
}


def _summary(messages: list[dict]) -> list[tuple[str, str]]:
    """Role and content; a host tool's result by its tool's name (its JSON is long)."""
    return [
        (
            m["role"],
            m["tool_name"]
            if m["role"] == "tool" and m["tool_name"] in ("query_order", "cancel_order")
            else m["content"],
        )
        for m in messages
    ]


def _agents_copy(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    folder = tmp_path / "agents"
    shutil.copytree(AGENTS, folder)
    dirs = json.dumps([str(PROJECT_ROOT / "agents"), str(folder)])
    return folder, {**TEST_AGENTS, "THREADHOST_AGENTS_DIRS": dirs}


def _restart(stacks: list, config) -> tuple[Api, Api]:
    for item in reversed(stacks):
        item.stop()
    stacks.clear()
    _, first, second = start_apps(config, stacks, "actors", "gateway", "gateway")
    return Api(first.url), Api(second.url)


@pytest.mark.parametrize("kind", PAUSES)
def test_a_paused_run_resumes_through_the_other_replica_after_a_restart(
    kind, stack_config, stacks, tmp_path
) -> None:
    agent, turn, answer, final = PAUSES[kind]
    folder, env = _agents_copy(tmp_path)
    config = stack_config(env=env)
    _, first, _ = start_apps(config, stacks, "actors", "gateway", "gateway")
    api = Api(first.url)
    thread = api.create_thread(agent=agent)
    paused = api.http.post(f"/v1/threads/{thread}/messages", json=turn)
    assert paused.status_code == 200, paused.text
    run = paused.json()["run"]
    assert run["status"] == "requires_action"
    [action] = run["required_action"]
    assert action["type"] == answer["type"]

    # While it waits, its agent gets a new version without its tools or script.
    (folder / f"{agent}.json").write_text(
        json.dumps(
            {"name": agent, "version": 2, "model": "scripted", "script": ["version 2 speaking"]}
        )
    )
    _, other = _restart(stacks, config)
    assert other.run(thread, run["run_id"])["status"] == "requires_action"
    resumed = other.http.post(
        f"/v1/threads/{thread}/runs/{run['run_id']}/resume",
        json={"actions": [{**answer, "call_id": action["call_id"]}]},
    )
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["run"]["status"] == "completed"
    assert resumed.json()["run"]["agent"]["version"] == 1
    assert _summary(other.messages(thread)) == final
    events = other.events(thread, run["run_id"])
    assert [e["seq"] for e in events] == list(range(len(events)))
    statuses = [e["data"]["status"] for e in events if e["type"] == "run.status"]
    assert statuses == ["running", "requires_action", "running", "completed"]


def test_a_deadline_denies_the_approval_after_its_host_was_killed(stack_config, stacks) -> None:
    config = stack_config()
    first_host, second_host, gateway = start_apps(config, stacks, "actors", "actors", "gateway")
    api = Api(gateway.url)
    thread = api.create_thread(agent="deadline")
    run = api.say(thread, "Cancel order 1002.")["run"]
    assert run["status"] == "requires_action" and run["deadline"]
    holder = next(h for h in (first_host, second_host) if thread in h.actor_stats()["active"])
    holder.kill()
    # Killed before the deadline: the surviving host is the one to deny the call.
    assert datetime.now(UTC) < datetime.fromisoformat(run["deadline"])

    ended = wait_for(
        lambda: (r := api.run(thread, run["run_id"]))["status"] == "completed" and r,
        30,
        "the deadline to deny the call and the run to end",
    )
    assert ended["required_action"] == [] and ended["deadline"] is None
    denied = [m for m in api.messages(thread) if m["role"] == "tool"]
    assert [(m["tool_name"], m["is_error"]) for m in denied] == [("cancel_order", True)]
    assert "deadline" in denied[0]["content"]
    types = [e["type"] for e in api.events(thread, run["run_id"])]
    assert "approval.expired" in types


def _paused(api: Api, agent: str = "asker") -> tuple[str, dict]:
    thread = api.create_thread(agent=agent)
    run = api.say(thread, "Cancel my order.")["run"]
    assert run["status"] == "requires_action"
    return thread, run


@pytest.mark.parametrize(
    ("actions", "status", "detail"),
    [
        (
            [{"type": "input", "call_id": "call_nope", "answer": "x"}],
            422,
            "call_nope is not a call this run waits for",
        ),
        (
            [{"type": "approval", "call_id": "{call}", "approved": True}],
            422,
            "{call} waits for input, not approval",
        ),
        (
            [
                {"type": "input", "call_id": "{call}", "answer": "a"},
                {"type": "input", "call_id": "{call}", "answer": "b"},
            ],
            422,
            "{call} is answered 2 times",
        ),
        ([], 422, "the request does not match"),
        ([{"type": "input", "call_id": "{call}"}], 422, "the request does not match"),
    ],
)
def test_bad_resumes_are_refused_and_change_nothing(stack, actions, status, detail) -> None:
    api = Api(stack.api.url)
    thread, run = _paused(api)
    call = run["required_action"][0]["call_id"]
    before = stored_rows(stack.config)
    body = json.loads(json.dumps({"actions": actions}).replace("{call}", call))
    response = api.http.post(f"/v1/threads/{thread}/runs/{run['run_id']}/resume", json=body)
    assert response.status_code == status, response.text
    assert detail.replace("{call}", call) in response.json()["detail"]
    assert stored_rows(stack.config) == before
    assert api.run(thread, run["run_id"])["status"] == "requires_action"


def test_a_second_resume_of_the_same_pause_is_409(stack) -> None:
    api = Api(stack.api.url)
    thread, run = _paused(api)
    body = {
        "actions": [
            {
                "type": "input",
                "call_id": run["required_action"][0]["call_id"],
                "answer": "Order 1002",
            }
        ]
    }
    url = f"/v1/threads/{thread}/runs/{run['run_id']}/resume"
    assert api.http.post(url, json=body).status_code == 200
    rows = stored_rows(stack.config)
    again = api.http.post(url, json=body)
    assert again.status_code == 409
    assert again.json()["type"].endswith("/run-not-waiting")
    assert stored_rows(stack.config) == rows
    assert [m["content"] for m in api.messages(thread)].count("Order 1002") == 1


def test_a_waiting_run_holds_no_actor_nor_reminder_and_can_be_cancelled(
    stack_config, stacks
) -> None:
    stack = Stack(stack_config(env=FAST_IDLE))
    stacks.append(stack)
    stack.start()
    api = Api(stack.api.url)
    thread, run = _paused(api)
    # Waiting, it holds no memory: its actor deactivates, and no reminder or job wakes it.
    wait_for(
        lambda: thread not in stack.api.actor_stats()["active"],
        30,
        "the waiting thread's actor to deactivate",
    )
    reminder = f"{stack.api.dapr_url}/v1.0/actors/Thread/{thread}/reminders/deadline"
    assert httpx.get(reminder).status_code != 200
    assert httpx.get(f"{stack.api.dapr_url}/v1.0/jobs/{job_name(thread)}").status_code != 200
    cancelled = api.http.post(f"/v1/threads/{thread}/runs/{run['run_id']}/cancel").json()
    assert (cancelled["status"], cancelled["required_action"]) == ("cancelled", [])
    kinds = [(m["kind"], m.get("is_error")) for m in api.messages(thread)]
    assert kinds[-1] == ("tool_result", True)  # the question is answered for the history
    assert api.say(thread, "Hello again")["run"]["status"] == "requires_action"


def test_erase_leaves_no_key_and_no_reminder_of_a_waiting_thread(stack) -> None:
    api = Api(stack.api.url)
    keep = api.create_thread()
    api.say(keep, "stay")
    thread = api.create_thread(agent="approvals")
    api.say(thread, "Please cancel order 1002.")  # pauses, with a deadline reminder
    run = api.http.post(
        f"/v1/threads/{thread}/messages", json={"content": "queued behind it", "mode": "background"}
    ).json()
    assert run["run"]["status"] == "queued"
    reminder = f"{stack.api.dapr_url}/v1.0/actors/Thread/{thread}/reminders/deadline"
    assert httpx.get(reminder).status_code == 200
    kept = {k: v for k, v in stored_rows(stack.config).items() if keep in k}

    assert api.http.delete(f"/v1/threads/{thread}").status_code == 204
    assert not [key for key in stored_rows(stack.config) if thread in key]
    assert {k: v for k, v in stored_rows(stack.config).items() if keep in k} == kept
    assert thread not in [t["id"] for t in api.http.get("/v1/threads").json()["threads"]]
    wait_for(lambda: httpx.get(reminder).status_code != 200, 10, "the deadline to be removed")


def _expiries(config, thread: str) -> dict[str, datetime]:
    """Each key of the thread and when the store expires it (SQLite's own column), once
    the thread's announcements are sent (they are removed then: stored_rows)."""
    stored_rows(config)
    path = config.process_env()["THREADHOST_SQLITE_PATH"]
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "select key, expiration_time from state where key like ?", (f"%||{thread}||%",)
        ).fetchall()
    return {
        key.rsplit("||", 1)[1]: expiry and datetime.fromisoformat(expiry).replace(tzinfo=UTC)
        for key, expiry in rows
    }  # UTC, without an offset


def test_a_thread_is_gone_its_retention_after_its_last_activity(stack) -> None:
    api = Api(stack.api.url)
    keep = api.create_thread()
    thread = api.create_thread(agent="ephemeral")  # retention: 3 s
    api.say(keep, "stay")
    api.say(thread, "one")
    first = _expiries(stack.config, thread)
    assert all(first.values()) and {"thread", "history.0"} <= set(first)
    assert not any(_expiries(stack.config, keep).values())

    # Just before it would expire, a turn renews every key, the first page too.
    wait_for(
        lambda: datetime.now(UTC) > first["history.0"] - timedelta(seconds=1.5),
        10,
        "the first keys to near their expiry",
    )
    api.say(thread, "two")
    renewed = _expiries(stack.config, thread)
    assert all(renewed[key] > first[key] for key in first)

    # Idle, it goes: the store itself stops returning its keys.
    state = f"{stack.api.dapr_url}/v1.0/actors/Thread/{thread}/state/thread"
    wait_for(lambda: httpx.get(state).status_code == 204, 15, "the store to expire the thread")
    assert api.http.get(f"/v1/threads/{thread}").status_code == 404
    assert api.history(keep) == conversation("stay")
    # Its erase reminder drops it from the caller's list too.
    wait_for(
        lambda: [t["id"] for t in api.http.get("/v1/threads").json()["threads"]] == [keep],
        15,
        "the expired thread to leave its owner's list",
    )


def test_a_tool_switched_off_later_stays_on_for_the_waiting_run(stack) -> None:
    api = Api(stack.api.url)
    thread, run = _paused(api, agent="approvals")
    later = api.http.post(
        f"/v1/threads/{thread}/messages",
        json={
            "content": "No more cancelling.",
            "mode": "background",
            "disabled_tools": ["cancel_order"],
        },
    ).json()["run"]
    assert (later["status"], later["tools"]) == ("queued", ["query_order"])
    assert run["tools"] == ["query_order", "cancel_order"]

    done = api.http.post(
        f"/v1/threads/{thread}/runs/{run['run_id']}/resume",
        json={
            "actions": [
                {
                    "type": "approval",
                    "call_id": run["required_action"][0]["call_id"],
                    "approved": True,
                }
            ]
        },
    ).json()
    assert done["run"]["status"] == "completed"
    results = {m["call_id"]: m for m in api.messages(thread) if m["role"] == "tool"}
    assert '"status":"cancelled"' in results[run["required_action"][0]["call_id"]]["content"]
    # The later run, whose model calls it anyway, has no such tool: an error, no pause.
    ended = wait_for(
        lambda: (r := api.run(thread, later["run_id"]))["status"] == "completed" and r,
        30,
        "the later run to end",
    )
    assert ended["required_action"] == []
    last_cancel = [m for m in api.messages(thread) if m["tool_name"] == "cancel_order"][-1]
    assert last_cancel["is_error"] and "no tool named" in last_cancel["content"]


def _redis(address: str, *args: str) -> list[str]:
    host, port = address.split(":")
    out = subprocess.run(
        ["redis-cli", "-h", host, "-p", port, *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    return out.split()


def test_retention_in_redis_lets_redis_delete_the_keys(stack_config, stacks, redis_server) -> None:
    stack = Stack(stack_config("redis", env={"THREADHOST_REDIS_HOST": redis_server}))
    stacks.append(stack)
    stack.start()
    api = Api(stack.api.url)
    keep, thread = api.create_thread(), api.create_thread(agent="ephemeral")
    api.say(keep, "stay")
    api.say(thread, "one")
    keys = _redis(redis_server, "--scan", "--pattern", f"*||{thread}||*")
    assert len(keys) >= 4
    # Every key expires (-2: gone since the scan, as a sent announcement's key is).
    ttls = {key: int(_redis(redis_server, "pttl", key)[0]) for key in keys}
    assert all(0 < ttl <= 4000 or ttl == -2 for ttl in ttls.values()), ttls
    kept = _redis(redis_server, "--scan", "--pattern", f"*||{keep}||*")
    assert {_redis(redis_server, "pttl", key)[0] for key in kept} == {"-1"}  # no TTL
    wait_for(
        lambda: not _redis(redis_server, "--scan", "--pattern", f"*||{thread}||*"),
        15,
        "Redis to delete the expired thread's keys",
    )
    assert api.history(keep) == conversation("stay")


def test_retention_in_postgres_marks_rows_and_hides_them_once_expired(
    stack_config, stacks, postgres_server
) -> None:
    stack = Stack(stack_config("postgres", env={"THREADHOST_POSTGRES_URL": postgres_server}))
    stacks.append(stack)
    stack.start()
    api = Api(stack.api.url)
    thread = api.create_thread(agent="ephemeral")
    api.say(thread, "one")
    rows = _psql(
        postgres_server,
        f"select count(*), count(expires_at) from state where key like '%||{thread}||%'",
    )
    total, expiring = rows.split("|")
    assert int(total) >= 4 and expiring == total
    state = f"{stack.api.dapr_url}/v1.0/actors/Thread/{thread}/state/thread"
    wait_for(lambda: httpx.get(state).status_code == 204, 15, "PostgreSQL to hide the thread")


def _psql(url: str, query: str) -> str:
    fields = dict(part.split("=", 1) for part in url.split())
    done = subprocess.run(
        [
            postgres_bin("psql"),
            "-h",
            fields["host"],
            "-p",
            fields["port"],
            "-U",
            fields["user"],
            "-d",
            fields["dbname"],
            "-At",
            "-c",
            query,
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
