"""A caller's thread list and rate limits, kept by their Owner actor: the same through any
gateway replica, and listing threads wakes none of them."""

import httpx

from tests.conftest import Api, conversation, start_apps, wait_for


def test_a_caller_lists_their_threads_newest_first_without_waking_them(stack) -> None:
    api = Api(stack.api.url)
    threads = [api.create_thread(n=str(n)) for n in range(3)]
    api.http.delete(f"/v1/threads/{threads[1]}")
    activations = stack.api.actor_stats()["activations"]
    listed = api.http.get("/v1/threads").json()
    assert [t["id"] for t in listed["threads"]] == [threads[2], threads[0]]
    assert listed["threads"][0]["metadata"] == {"n": "2"}
    assert stack.api.actor_stats()["activations"] == activations
    page = api.http.get("/v1/threads", params={"limit": 1}).json()
    assert [t["id"] for t in page["threads"]] == [threads[2]] and page["next_offset"] == 1


def test_the_request_limit_holds_across_two_gateway_replicas(stack_config, stacks) -> None:
    config = stack_config(env={"THREADHOST_RATE_LIMIT_PER_MINUTE": "5"})
    _, gateway_a, gateway_b = start_apps(config, stacks, "actors", "gateway", "gateway")
    answers = [
        httpx.get(f"{(gateway_a, gateway_b)[n % 2].url}/v1/threads", timeout=30) for n in range(6)
    ]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
    assert answers[-1].json()["type"].endswith("/rate-limited")


def test_concurrent_runs_are_limited(stack_config, stacks) -> None:
    config = stack_config(env={"THREADHOST_MAX_CONCURRENT_RUNS": "1"})
    [app] = start_apps(config, stacks, "embedded")
    api = Api(app.url)
    slow, other = api.create_thread(agent="slow"), api.create_thread()
    first = api.http.post(
        f"/v1/threads/{slow}/messages", json={"content": "Order 1001?", "mode": "background"}
    )
    assert first.status_code == 202
    refused = api.http.post(f"/v1/threads/{other}/messages", json={"content": "hi"})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "5"

    run = first.json()["run"]["run_id"]
    wait_for(lambda: api.run(slow, run)["status"] == "completed", 30, "the slow run")
    wait_for(
        lambda: (
            api.http.post(f"/v1/threads/{other}/messages", json={"content": "hi"}).status_code
            == 200
        ),
        10,
        "the run slot to be freed",
    )
    # A message that starts no run (no such thread) hands its slot back: were it kept,
    # the one slot would stay taken and the next turn would be refused for good.
    # (The run just before frees its slot a moment after answering: wait for that.)
    wait_for(
        lambda: (
            api.http.post("/v1/threads/th_nosuch/messages", json={"content": "hi"}).status_code
            == 404
        ),
        10,
        "the message to a missing thread to be admitted",
    )
    wait_for(
        lambda: (
            api.http.post(f"/v1/threads/{other}/messages", json={"content": "again"}).status_code
            == 200
        ),
        10,
        "the slot of the message that started no run",
    )


def test_a_waiting_run_holds_no_run_slot(stack_config, stacks) -> None:
    config = stack_config(env={"THREADHOST_MAX_CONCURRENT_RUNS": "1"})
    [app] = start_apps(config, stacks, "embedded")
    api = Api(app.url)
    asker, other = api.create_thread(agent="asker"), api.create_thread()
    run = api.say(asker, "Cancel my order.")["run"]
    assert run["status"] == "requires_action"
    # While it waits for its answer, the caller's one slot serves other turns.
    for text in ("one", "two"):
        wait_for(
            lambda t=text: (
                api.http.post(f"/v1/threads/{other}/messages", json={"content": t}).status_code
                == 200
            ),
            10,
            "a turn beside the waiting run",
        )
    answer = {
        "actions": [
            {
                "type": "input",
                "call_id": run["required_action"][0]["call_id"],
                "answer": "Order 1002",
            }
        ]
    }
    resumed = wait_for(
        lambda: (
            (
                r := api.http.post(f"/v1/threads/{asker}/runs/{run['run_id']}/resume", json=answer)
            ).status_code
            == 200
            and r
        ),
        10,
        "the resume to be admitted",
    )
    assert resumed.json()["run"]["status"] == "completed"
    assert [m["content"] for m in api.messages(other) if m["role"] == "user"] == ["one", "two"]


def test_a_conversation_alternates_between_two_gateway_replicas(stack_config, stacks) -> None:
    _, gateway_a, gateway_b = start_apps(stack_config(), stacks, "actors", "gateway", "gateway")
    replicas = [Api(gateway_a.url), Api(gateway_b.url)]
    thread = replicas[0].create_thread()
    texts = [f"turn {n}" for n in range(4)]
    for n, text in enumerate(texts):
        assert replicas[n % 2].say(thread, text)["reply"] == f"You said: {text}"
    assert replicas[1].history(thread) == conversation(*texts)
    assert replicas[0].history(thread) == replicas[1].history(thread)
