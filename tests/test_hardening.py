"""What an outside caller may send and do, in the shape people deploy (gateway and actor
host apart): text arrives exactly as sent or is refused with a 422 naming the field,
daprd's routes answer daprd alone, a turn's answer is that turn's, errors are problem
documents with the status and headers HTTP asks for."""

import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Api, stored_rows
from threadhost.client import EventStreamParser
from threadhost.stack import Stack

# Strings the SDK's decoder used to turn into datetimes and timedeltas, or choke on.
LOOKALIKES = [
    "2024-01-05",
    "2024-01-05T10:00:00Z",
    "2024-01-05 10:00:00+02:00",
    "2024-01-05: my order",
    "10:30",
    "10:30:00.123",
    "1h30m",
    "0h0m3s0ms",
    "90s",
    "P1DT2H",
    "2024-13-45",
    "12",
    "-0",
    "1e3",
    "NaN",
    "true",
    "null",
    " 2024-01-05 ",
    "2024-01-05T10:00:00Z trailing",
]


def _raw(
    stack: Stack,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, dict, bytes]:
    """One request on a kept-alive connection, with the body's bytes exactly as given."""
    url = urlsplit(stack.api.url)
    conn = connection or http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request(
        method, path, body=body, headers={"content-type": "application/json", **(headers or {})}
    )
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def _problem(status: int, headers: dict, body: bytes) -> dict:
    assert headers.get("content-type") == "application/problem+json", (status, body)
    problem = json.loads(body)
    assert problem["status"] == status
    return problem


@pytest.fixture(scope="module")
def api(split_stack: Stack) -> Api:
    return Api(split_stack.api.url)


def test_date_and_duration_lookalikes_arrive_as_sent_in_every_text_field(api) -> None:
    # Message text, and the scripted echo of it.
    thread = api.create_thread()
    for text in LOOKALIKES:
        assert api.say(thread, text)["reply"] == f"You said: {text}"
    users = [m["content"] for m in api.messages(thread) if m["role"] == "user"]
    assert users == LOOKALIKES

    # Metadata values, on the thread and in the caller's list (the Owner actor).
    metadata = {f"k{n}": text for n, text in enumerate(LOOKALIKES[:16])}
    created = api.http.post("/v1/threads", json={"metadata": metadata})
    assert created.status_code == 201, created.text
    tagged = created.json()["id"]
    assert api.http.get(f"/v1/threads/{tagged}").json()["metadata"] == metadata
    listed = {t["id"]: t for t in api.http.get("/v1/threads").json()["threads"]}
    assert listed[tagged]["metadata"] == metadata

    # Answers to questions, and client tool outputs and their error flag.
    for text in LOOKALIKES[:6]:
        asked = api.create_thread(agent="asker")
        run = api.say(asked, "Cancel my order.")["run"]
        call = run["required_action"][0]["call_id"]
        resumed = api.http.post(
            f"/v1/threads/{asked}/runs/{run['run_id']}/resume",
            json={"actions": [{"type": "input", "call_id": call, "answer": text}]},
        )
        assert resumed.status_code == 200, resumed.text
        results = [m for m in api.messages(asked) if m["kind"] == "tool_result"]
        assert [m["content"] for m in results] == [text]

        located = api.create_thread(agent="locator")
        turn = api.http.post(
            f"/v1/threads/{located}/messages",
            json={
                "content": text,
                "client_tools": [
                    {
                        "name": "get_location",
                        "description": text,
                        "parameters": {"type": "object", "description": text},
                    }
                ],
            },
        )
        run = turn.json()["run"]
        call = run["required_action"][0]["call_id"]
        resumed = api.http.post(
            f"/v1/threads/{located}/runs/{run['run_id']}/resume",
            json={"actions": [{"type": "tool_result", "call_id": call, "output": text}]},
        )
        assert resumed.status_code == 200, resumed.text
        contents = [m["content"] for m in api.messages(located)]
        assert contents[0] == text and text in contents


@pytest.mark.parametrize(
    "field,body",
    [
        ("content", b'{"content": "bad \\ud800 surrogate"}'),
        ("content", b'{"content": "nul \\u0000 inside"}'),
        ("disabled_tools", b'{"content": "hi", "disabled_tools": ["x\\udfff"]}'),
        (
            "client_tools",
            b'{"content": "hi", "client_tools": [{"name": "t", "parameters": '
            b'{"type": "object", "properties": {"a\\ud83d": {}}}}]}',
        ),
    ],
)
def test_text_that_is_not_text_is_a_422_naming_the_field_and_the_connection_stays(
    split_stack, api, field, body
) -> None:
    thread = api.create_thread()
    rows = stored_rows(split_stack.config)
    url = urlsplit(split_stack.api.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    status, headers, answer = _raw(
        split_stack, "POST", f"/v1/threads/{thread}/messages", body, connection=connection
    )
    problem = _problem(422, headers, answer)
    assert status == 422 and problem["type"].endswith("/invalid-request")
    assert any(field in e["location"] for e in problem["errors"]), problem
    assert "surrogate" in answer.decode() or "NUL" in answer.decode()
    assert headers.get("connection", "").lower() != "close"
    # The same connection serves the next request: it was not dropped.
    status, _, _ = _raw(split_stack, "GET", f"/v1/threads/{thread}", connection=connection)
    assert status == 200
    assert stored_rows(split_stack.config) == rows  # nothing written


@pytest.mark.parametrize(
    "body",
    [
        b'{"metadata": {"k\\ud800": "v"}}',
        b'{"metadata": {"k": "v\\udc00"}}',
        b'{"metadata": {"k": "\\u0000"}}',
    ],
)
def test_metadata_that_is_not_text_writes_no_thread(split_stack, body) -> None:
    rows = stored_rows(split_stack.config)
    status, headers, answer = _raw(split_stack, "POST", "/v1/threads", body)
    assert status == 422
    assert "metadata" in _problem(422, headers, answer)["errors"][0]["location"]
    assert stored_rows(split_stack.config) == rows


def test_a_turns_answer_holds_its_own_messages_only(api) -> None:
    """Ten messages at once on one thread: they queue, and each wait-mode answer lists
    its own message and reply, not the next queued one."""
    thread = api.create_thread()
    texts = [f"message {n}" for n in range(10)]
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda text: api.say(thread, text), texts))
    for text, answer in zip(texts, answers, strict=True):
        assert [(m["role"], m["content"]) for m in answer["messages"]] == [
            ("user", text),
            ("assistant", f"You said: {text}"),
        ]
        assert answer["reply"] == f"You said: {text}"


@pytest.mark.parametrize(
    "path",
    [
        "/internal/run-events",
        "/internal/run-control",
        "/internal/actors",
        "/dapr/subscribe",
        "/dapr/config",
        "/actors/Thread/x/method/Describe",
        "/actors/ThreadReader/x/method/ReadRun",
    ],
)
def test_daprds_routes_refuse_everyone_else(split_stack, path) -> None:
    forged = {"data": {"thread_id": "t", "run_id": "r", "step": 1, "delta": "forged"}}
    for app in split_stack.apps:
        for headers in ({}, {"dapr-api-token": "guessed"}):
            method = (
                "PUT"
                if path.startswith("/actors")
                else ("POST" if path.startswith("/internal/run-") else "GET")
            )
            response = httpx.request(
                method, f"{app.url}{path}", json=forged, headers=headers, timeout=30
            )
            assert response.status_code == 403, (app.name, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"].endswith("/forbidden")


def test_a_forged_event_never_reaches_a_stream(split_stack, api) -> None:
    """The stream of a running turn shows the run's own events, whatever is posted to
    the gateway's pub/sub route meanwhile."""
    thread = api.create_thread(agent="support")
    gateway = split_stack.apps[-1]
    forged = {"thread_id": thread, "run_id": "", "step": 1, "delta": "FORGED TEXT"}
    with api.http.stream(
        "POST", f"/v1/threads/{thread}/messages", json={"content": "Order 1001?", "mode": "stream"}
    ) as stream:
        posted = httpx.post(f"{gateway.url}/internal/run-events", json={"data": forged}, timeout=30)
        body = stream.read().decode()
    assert posted.status_code == 403
    parser = EventStreamParser()
    events = [e for line in body.splitlines() if (e := parser.feed(line)) is not None]
    assert "FORGED" not in body
    assert (events[-1].event, events[-1].data["data"]["status"]) == ("run.status", "completed")


@pytest.mark.parametrize(
    "body,status",
    [(b"not json", 400), (b'{"data": {"x": 1}}', 422), (b"[1, 2]", 422), (b'{"data": null}', 422)],
)
def test_bad_bodies_on_daprds_routes_are_4xx(split_stack, body, status) -> None:
    token = split_stack.config.app_token
    for app, path in (
        (split_stack.apps[-1], "/internal/run-events"),
        (split_stack.apps[0], "/internal/run-control"),
    ):
        response = httpx.post(
            f"{app.url}{path}",
            content=body,
            timeout=30,
            headers={"dapr-api-token": token, "content-type": "application/json"},
        )
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"


def test_http_rules_and_problem_types(split_stack, api) -> None:
    thread = api.create_thread()
    wrong_method = api.http.put(f"/v1/threads/{thread}")
    assert wrong_method.status_code == 405
    assert set(wrong_method.headers["allow"].replace(" ", "").split(",")) == {"GET", "DELETE"}
    assert wrong_method.headers["content-type"] == "application/problem+json"

    no_run = api.http.get(f"/v1/threads/{thread}/runs/run_nope")
    assert no_run.status_code == 404 and no_run.json()["type"].endswith("/run-not-found")
    no_thread = api.http.get("/v1/threads/th_nope/runs/run_nope")
    assert no_thread.json()["type"].endswith("/thread-not-found")

    for body in (b'{"content": "\xff\xfe"}', b'{"content": ' * 2000 + b'"x"' + b"}" * 2000):
        status, headers, answer = _raw(split_stack, "POST", f"/v1/threads/{thread}/messages", body)
        assert status in (400, 422), answer
        assert _problem(status, headers, answer)["type"].endswith("/invalid-request")

    refused = [
        api.http.post(f"/v1/threads/{thread}/messages", json={"content": "hi", "extra": 1}),
        api.http.post("/v1/threads", json={"metadata": {}, "owner": "someone-else"}),
        api.http.post(
            f"/v1/threads/{thread}/runs/run_x/resume",
            json={"actions": [{"call_id": "c", "approved": True}]},
        ),
        api.http.post(
            f"/v1/threads/{thread}/messages",
            json={
                "content": "hi",
                "client_tools": [{"name": "t", "parameters": {"type": "string"}}],
            },
        ),
    ]
    assert [r.status_code for r in refused] == [422] * len(refused)
    assert api.history(thread) == []
