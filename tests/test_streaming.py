"""Run events as server-sent events: a streamed turn, background turns, and a client that
reconnects to another gateway replica with Last-Event-ID."""

import json

import httpx

from tests.conftest import Api, start_apps, wait_for


def read_sse(lines) -> list[dict]:
    """Parses server-sent events: dicts with id (None for token deltas), event and data."""
    events, current = [], {}
    for line in lines:
        if not line:
            if current:
                events.append(current)
                current = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(": ")
        current[field] = value
        if field == "data":
            current["data"] = json.loads(value)
            if (
                current.get("event") == "run.status"
                and current["data"]["data"]["status"] == "completed"
            ):
                events.append(current)
                return events
    return events


def test_a_streamed_turn_sends_every_event_once_in_order_with_token_deltas(stack) -> None:
    api = Api(stack.api.url)
    thread = api.create_thread(agent="support")
    with api.http.stream(
        "POST",
        f"/v1/threads/{thread}/messages",
        json={"content": "Where is my order 1001?", "mode": "stream"},
    ) as sse:
        assert sse.headers["content-type"].startswith("text/event-stream")
        assert sse.headers["x-accel-buffering"] == "no"
        events = read_sse(sse.iter_lines())
    numbered = [e for e in events if "id" in e]
    assert [int(e["id"]) for e in numbered] == list(range(len(numbered)))
    assert numbered[-1]["data"]["data"]["status"] == "completed"
    answers = [
        m["text"]
        for e in numbered
        if e["event"] == "step.completed"
        for m in e["data"]["data"]["messages"]
        if m["kind"] == "assistant_text"
    ]
    deltas = "".join(e["data"]["text"] for e in events if e["event"] == "token.delta")
    # Deltas are sent for the steps not already over when the stream started.
    assert deltas and deltas in "".join(answers)


def test_a_background_turn_answers_202_and_the_run_completes(stack) -> None:
    api = Api(stack.api.url)
    thread = api.create_thread(agent="support")
    response = api.http.post(
        f"/v1/threads/{thread}/messages",
        json={"content": "Where is my order 1001?", "mode": "background"},
    )
    assert response.status_code == 202
    url = response.headers["location"]
    with api.http.stream("GET", url + "/events", headers={"accept": "text/event-stream"}) as sse:
        events = read_sse(sse.iter_lines())
    assert events[-1]["data"]["data"]["status"] == "completed"
    assert api.http.get(url).json()["status"] == "completed"


def test_a_client_reconnects_to_the_other_replica_and_misses_nothing(
    stack_config, stacks, redis_server
) -> None:
    config = stack_config("redis", env={"THREADHOST_REDIS_HOST": redis_server})
    _, gateway_a, gateway_b = start_apps(config, stacks, "actors", "gateway", "gateway")
    rest = stream_cut_and_resumed(Api(gateway_a.url), Api(gateway_b.url))
    assert any(e["event"] == "step.completed" for e in rest)


def stream_cut_and_resumed(api_a: Api, api_b: Api) -> list[dict]:
    """A streamed turn cut mid-run on one gateway replica and resumed on the other with
    Last-Event-ID: every numbered event once, in order, to the end. Returns the rest."""
    thread = api_a.create_thread(agent="slow")  # its first model call takes 3 s
    with api_a.http.stream(
        "POST",
        f"/v1/threads/{thread}/messages",
        json={"content": "Where is order 1001?", "mode": "stream"},
    ) as sse:
        run_url = sse.headers["location"]
        seen = read_sse_until(sse.iter_lines(), count=2)
    assert [e["event"] for e in seen] == ["run.created", "run.status"]  # cut mid-run

    with api_b.http.stream(
        "GET",
        f"{run_url}/events",
        headers={"accept": "text/event-stream", "last-event-id": seen[-1]["id"]},
    ) as sse:
        assert sse.status_code == 200
        rest = read_sse(sse.iter_lines())
    ids = [int(e["id"]) for e in seen + rest if "id" in e]
    assert ids == list(range(len(ids)))
    assert rest[-1]["data"]["data"]["status"] == "completed"
    return rest


def read_sse_until(lines, count: int) -> list[dict]:
    """The first `count` numbered events, then stop reading (the client disconnects)."""
    events, current = [], {}
    for line in lines:
        if not line:
            if current.get("id") is not None:
                events.append(current)
                if len(events) == count:
                    return events
            current = {}
            continue
        field, _, value = line.partition(": ")
        current[field] = json.loads(value) if field == "data" else value
    return events


def test_events_of_an_unknown_run_are_404(stack) -> None:
    api = Api(stack.api.url)
    thread = api.create_thread()
    response = httpx.get(
        f"{stack.api.url}/v1/threads/{thread}/runs/run_nope/events",
        headers={"accept": "text/event-stream"},
        timeout=10,
    )
    assert response.status_code == 404


def test_polling_and_replay_do_not_wait_for_a_running_step(stack) -> None:
    """While the slow agent's 3-second model call holds the thread's lock, the run's
    status and events still come back, committed as of the last step."""
    api = Api(stack.api.url)
    thread = api.create_thread(agent="slow")
    started = api.http.post(
        f"/v1/threads/{thread}/messages",
        json={"content": "Where is order 1001?", "mode": "background"},
    )
    url = started.headers["location"]
    wait_for(lambda: stack.api.actor_stats()["steps_running"] == 1, 10, "the slow step to start")
    run = api.http.get(url).json()
    events = api.http.get(url + "/events").json()["events"]
    # Had either request waited for the lock, the run would be over by now.
    assert run["status"] == "running" and run["steps"] == 0
    assert [e["type"] for e in events] == ["run.created", "run.status"]
    assert stack.api.actor_stats()["steps_running"] == 1
