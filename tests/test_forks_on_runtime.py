"""Forks on the split stack: a new thread of the same owner whose history is the first
one's up to a message, with no run; both go on apart; a retry finds the same fork; a cut
between a tool call and its result, or past the end, is refused."""

from __future__ import annotations

from tests.conftest import Api
from threadhost.stack import Stack


def test_a_fork_starts_from_a_message_and_both_threads_go_on_apart(split_stack: Stack) -> None:
    api = Api(split_stack.api.url)
    thread = api.create_thread(topic="orders")
    for text in ("first", "second", "third"):
        api.say(thread, text)
    original = api.messages(thread)
    assert len(original) == 6
    made = api.http.post(
        f"/v1/threads/{thread}/fork", json={"message_index": 2}, headers={"Idempotency-Key": "f-1"}
    )
    assert made.status_code == 201, made.text
    fork = made.json()
    assert fork["forked_from"] == {"thread_id": thread, "message_index": 2}
    assert fork["message_count"] == 2 and fork["active_run"] is None
    assert fork["metadata"] == {"topic": "orders"} and fork["agent"] == "assistant"
    assert api.messages(fork["id"]) == original[:2]
    again = api.http.post(
        f"/v1/threads/{thread}/fork", json={"message_index": 2}, headers={"Idempotency-Key": "f-1"}
    )
    assert again.json()["id"] == fork["id"]
    # "Try that again from here": the fork goes its own way, the original stays.
    answer = api.say(fork["id"], "second, said otherwise")
    assert answer["reply"] == "You said: second, said otherwise"
    assert [m["content"] for m in api.messages(fork["id"])][2:] == [
        "second, said otherwise",
        "You said: second, said otherwise",
    ]
    assert api.messages(thread) == original
    listed = api.http.get("/v1/threads").json()["threads"]
    assert fork["id"] in {t["id"] for t in listed}


def test_a_fork_that_would_break_the_history_is_refused(split_stack: Stack) -> None:
    api = Api(split_stack.api.url)
    thread = api.create_thread(agent="support")
    api.say(thread, "Where is my order 1001?")
    kinds = [m["kind"] for m in api.messages(thread)]
    assert kinds[2:4] == ["tool_call", "tool_result"]
    cut = api.http.post(f"/v1/threads/{thread}/fork", json={"message_index": 3})
    assert cut.status_code == 422 and "tool call" in cut.json()["detail"]
    past = api.http.post(f"/v1/threads/{thread}/fork", json={"message_index": 99})
    assert past.status_code == 422 and "past the thread's 7 messages" in past.json()["detail"]
    unknown = api.http.post("/v1/threads/th_nobody/fork", json={"message_index": 0})
    assert unknown.status_code == 404
    whole = api.http.post(f"/v1/threads/{thread}/fork", json={"message_index": len(kinds)})
    assert whole.status_code == 201 and whole.json()["message_count"] == len(kinds)
