"""A conversation through the gateway, on the real daprd, placement and scheduler."""

import httpx
import pytest

from tests.conftest import Api, conversation, stored_rows


def test_three_turns_come_back_whole_and_in_order(stack) -> None:
    api = Api(stack.api.url)
    thread = api.create_thread(user="u-1")
    replies = [api.say(thread, text)["reply"] for text in ("hi", "order 1001?", "thanks")]
    assert replies == ["You said: hi", "You said: order 1001?", "You said: thanks"]
    assert api.history(thread) == conversation("hi", "order 1001?", "thanks")
    described = api.http.get(f"/v1/threads/{thread}").json()
    assert described["message_count"] == 6
    assert described["metadata"] == {"user": "u-1"}


def test_history_pages_through_a_long_thread(stack) -> None:
    api = Api(stack.api.url)
    thread = api.create_thread()
    texts = [f"message {n}" for n in range(40)]  # 80 messages: three pages of 32
    for text in texts:
        api.say(thread, text)
    page = api.http.get(f"/v1/threads/{thread}/messages", params={"offset": 30, "limit": 5})
    body = page.json()
    assert [m["index"] for m in body["messages"]] == [30, 31, 32, 33, 34]
    assert body["messages"][0]["content"] == "message 15"
    assert body["next_offset"] == 35
    everything = api.http.get(f"/v1/threads/{thread}/messages").json()
    assert [(m["role"], m["content"]) for m in everything["messages"]] == conversation(*texts)
    assert everything["next_offset"] is None


@pytest.mark.parametrize(
    ("body", "status", "title"),
    [
        (b'{"content": ""}', 422, "Empty message"),
        (b'{"content": "   "}', 422, "Empty message"),
        (b'{"content": "' + b"x" * 16_001 + b'"}', 422, "Message too long"),
        (b'{"content": ', 400, "Malformed JSON"),
        (b'{"text": "wrong field"}', 422, "Invalid request"),
        (b'["content"]', 422, "Invalid request"),
        (b'{"content": "x", "client_tools": [{"name": "no spaces"}]}', 422, "Invalid request"),
        (
            b'{"content": "x", "client_tools": [{"name": "t", "parameters": {"type": "string"}}]}',
            422,
            "Invalid request",
        ),
        (
            b'{"content": "x", "client_tools": [{"name": "t"}, {"name": "t"}]}',
            422,
            "Invalid request",
        ),
        (b'{"content": "x", "disabled_tools": ["no_such_tool"]}', 422, "Invalid request"),
    ],
    ids=[
        "empty",
        "blank",
        "too-long",
        "malformed-json",
        "missing-field",
        "not-an-object",
        "client-tool-name",
        "client-tool-schema",
        "client-tools-clash",
        "unknown-tool-off",
    ],
)
def test_bad_messages_are_refused_and_nothing_is_written(stack, body, status, title) -> None:
    api = Api(stack.api.url)
    thread = api.create_thread()
    api.say(thread, "hello")
    before = stored_rows(stack.config)
    response = api.http.post(
        f"/v1/threads/{thread}/messages", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == title and problem["status"] == status
    assert "xxxxxxxxxx" not in response.text  # the input is not echoed back
    assert stored_rows(stack.config) == before
    assert api.history(thread) == conversation("hello")


def test_an_unknown_thread_is_404_and_leaves_no_trace(stack) -> None:
    api = Api(stack.api.url)
    before = stored_rows(stack.config)
    for response in (
        api.http.post("/v1/threads/th_nosuchthread/messages", json={"content": "hi"}),
        api.http.get("/v1/threads/th_nosuchthread/messages"),
        api.http.get("/v1/threads/th_nosuchthread"),
    ):
        assert response.status_code == 404
        assert response.json()["type"].endswith("/thread-not-found")
    assert stored_rows(stack.config) == before
    assert not any("th_nosuchthread" in key for key in stored_rows(stack.config))


def test_a_thread_id_outside_the_safe_alphabet_is_refused(stack) -> None:
    response = Api(stack.api.url).http.get("/v1/threads/bad%20id/messages")
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"] == ["path", "thread_id"]


def test_the_actor_refuses_a_blank_message_from_a_direct_caller(stack) -> None:
    """Services may call the actor through their sidecar, bypassing the gateway."""
    api = Api(stack.api.url)
    thread = api.create_thread()
    before = stored_rows(stack.config)
    url = f"{stack.api.dapr_url}/v1.0/actors/Thread/{thread}/method/PostMessage"
    for body in ({"text": "  "}, {"content": "wrong field"}, {"text": 42}):
        answer = httpx.post(url, json=body, timeout=30)
        assert answer.status_code == 200
        assert answer.json()["outcome"] == "invalid"
    assert stored_rows(stack.config) == before


def test_runs_are_listed_newest_first(stack) -> None:
    api = Api(stack.api.url)
    thread = api.create_thread()
    first = api.say(thread, "one")["run"]["run_id"]
    second = api.say(thread, "two")["run"]["run_id"]
    listed = api.http.get(f"/v1/threads/{thread}/runs").json()
    assert [r["run_id"] for r in listed["runs"]] == [second, first]
    assert listed["total"] == 2
    page = api.http.get(f"/v1/threads/{thread}/runs", params={"offset": 1, "limit": 1}).json()
    assert [r["run_id"] for r in page["runs"]] == [first]


def test_delete_removes_every_key_of_the_thread(stack) -> None:
    api = Api(stack.api.url)
    keep = api.create_thread()
    api.say(keep, "stay")
    thread = api.create_thread(agent="support")
    for text in ("one", "two", "three"):
        api.say(thread, text)
    assert any(thread in key for key in stored_rows(stack.config))
    kept_before = {k: v for k, v in stored_rows(stack.config).items() if keep in k}

    assert api.http.delete(f"/v1/threads/{thread}").status_code == 204
    assert not [key for key in stored_rows(stack.config) if thread in key]
    assert {k: v for k, v in stored_rows(stack.config).items() if keep in k} == kept_before
    assert api.http.get(f"/v1/threads/{thread}").status_code == 404
    assert api.http.delete(f"/v1/threads/{thread}").status_code == 404


def test_a_body_over_the_limit_is_413_declared_or_streamed(stack) -> None:
    api = Api(stack.api.url)
    thread = api.create_thread()
    before = stored_rows(stack.config)
    big = b'{"content": "' + b"x" * 300_000 + b'"}'

    def chunked():
        for start in range(0, len(big), 65_536):
            yield big[start : start + 65_536]

    for body in (big, chunked()):
        response = api.http.post(
            f"/v1/threads/{thread}/messages",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json()["type"].endswith("/body-too-large")
    assert stored_rows(stack.config) == before
