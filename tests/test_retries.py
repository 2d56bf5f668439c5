"""A request sent again is taken once. The official `openai` SDK retries a request whose
connection dropped after it reached the gateway; with the `Idempotency-Key` the docs tell
a client to pass, the retry finds the first attempt's thread and run and stores nothing
twice, on both OpenAI doors and on /v1/threads, on the real runtime (gateway and actor
host apart). A thread made while its owner's list could not be reached is named in the
503, and the key it gives finishes it (in process: the thread service in memory)."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
from openai import OpenAI

from actors.threads.contract import CreateThread, Request
from actors.threads.owner_contract import AddThread, Listed
from actors.threads.service import ThreadService
from actors.threads.store import ThreadStore
from gateway.auth import Caller
from gateway.thread_client import ThreadClient, Unreachable
from gateway.turn import open_thread
from tests.conftest import Api
from tests.loopback import LoopbackServer
from tests.memory_effects import MemoryEffects, MemoryState
from tests.test_thread_service import ENGINE, SETTINGS
from threadhost.stack import Stack


class DroppingProxy(LoopbackServer):
    """A TCP proxy in front of the gateway that, for the first `drops` connections, passes
    the request on, waits until the gateway starts to answer, and then closes the client's
    connection without a byte of the answer: the request was taken, the client saw a
    dropped connection."""

    def __init__(self, upstream: tuple[str, int], drops: int) -> None:
        self.upstream, self.drops, self.dropped = upstream, drops, 0
        super().__init__()

    def accepted(self, connection: socket.socket) -> None:
        threading.Thread(target=self._relay, args=(connection,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream, timeout=60)
        drop = self.dropped < self.drops
        self.dropped += drop

        def forward() -> None:
            try:
                while data := client.recv(65536):
                    upstream.sendall(data)
            except OSError:
                pass

        threading.Thread(target=forward, daemon=True).start()
        try:
            while data := upstream.recv(65536):
                if drop:  # the gateway answered: the client never hears it
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            for end in (client, upstream):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()


@pytest.fixture(scope="module")
def gateway(split_stack: Stack) -> Iterator[Stack]:
    yield split_stack


def _through_dropping_proxy(stack: Stack, drops: int = 1) -> tuple[DroppingProxy, OpenAI]:
    port = int(stack.api.url.rsplit(":", 1)[1])
    proxy = DroppingProxy(("127.0.0.1", port), drops)
    # As docs/openai.md says: the SDK sends no key of its own; one given in extra_headers
    # goes with the request and each of its retries.
    return proxy, OpenAI(base_url=f"http://127.0.0.1:{proxy.port}/v1", api_key="-", max_retries=2)


def test_a_chat_completion_retried_after_a_dropped_answer_is_taken_once(gateway) -> None:
    api = Api(gateway.api.url)
    before = len(api.http.get("/v1/threads", params={"limit": 100}).json()["threads"])
    proxy, client = _through_dropping_proxy(gateway)
    key = str(uuid.uuid4())
    history = [
        {"role": "user", "content": "Hello there."},
        {"role": "assistant", "content": "Hi! How can I help?"},
        {"role": "user", "content": "Where is my order 1001?"},
    ]
    try:
        answer = client.chat.completions.with_raw_response.create(
            model="assistant", messages=history, extra_headers={"Idempotency-Key": key}
        )
    finally:
        proxy.stop()
    assert proxy.dropped == 1  # the first attempt's answer was lost, the SDK retried
    thread = answer.headers["threadhost-thread-id"]
    assert answer.parse().choices[0].message.content == "You said: Where is my order 1001?"
    listed = api.http.get("/v1/threads", params={"limit": 100}).json()["threads"]
    assert len(listed) == before + 1 and listed[0]["id"] == thread
    assert api.history(thread) == [
        ("user", "Hello there."),
        ("assistant", "Hi! How can I help?"),
        ("user", "Where is my order 1001?"),
        ("assistant", "You said: Where is my order 1001?"),
    ]
    assert len(api.http.get(f"/v1/threads/{thread}/runs").json()["runs"]) == 1

    # On the thread it made: earlier user messages sent again are imported once.
    proxy, client = _through_dropping_proxy(gateway)
    try:
        client.chat.completions.create(
            model="assistant",
            extra_headers={"Idempotency-Key": str(uuid.uuid4()), "threadhost-thread-id": thread},
            messages=[
                {"role": "user", "content": "One more thing."},
                {"role": "user", "content": "Thanks!"},
            ],
        )
    finally:
        proxy.stop()
    assert api.history(thread)[4:] == [
        ("user", "One more thing."),
        ("user", "Thanks!"),
        ("assistant", "You said: Thanks!"),
    ]


def test_a_response_retried_after_a_dropped_answer_is_taken_once(gateway) -> None:
    api = Api(gateway.api.url)
    proxy, client = _through_dropping_proxy(gateway)
    try:
        response = client.responses.create(
            model="assistant",
            input="Where is order 1002?",
            extra_headers={"Idempotency-Key": "resp-key-1"},
        )
    finally:
        proxy.stop()
    assert proxy.dropped == 1
    thread = response.conversation.id if response.conversation else None
    assert thread is not None
    assert api.history(thread) == [
        ("user", "Where is order 1002?"),
        ("assistant", "You said: Where is order 1002?"),
    ]


def test_a_thread_created_again_with_its_key_is_the_same_thread_listed_once(gateway) -> None:
    api = Api(gateway.api.url)
    headers = {"Idempotency-Key": f"create-{uuid.uuid4()}"}
    first = api.http.post("/v1/threads", json={"metadata": {"k": "v"}}, headers=headers)
    again = api.http.post("/v1/threads", json={"metadata": {"k": "v"}}, headers=headers)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert first.json()["id"] == again.json()["id"]
    listed = [t["id"] for t in api.http.get("/v1/threads", params={"limit": 100}).json()["threads"]]
    assert listed.count(first.json()["id"]) == 1
    other = api.http.post("/v1/threads", json={})
    assert other.json()["id"] != first.json()["id"]


class ThreadsInMemory(ThreadClient):
    """The gateway's thread client with the thread service in memory and owners' lists
    that cannot be reached the first `failures` times (a host going)."""

    def __init__(self, failures: int) -> None:
        super().__init__(60, "pubsub", "control")
        self.services: dict[str, ThreadService] = {}
        self.lists: dict[str, list[str]] = {}
        self.failures = failures

    async def call(self, thread_id: str, request: Request, attempts=None, actor_type=""):
        state = MemoryState()
        service = self.services.setdefault(
            thread_id,
            ThreadService(thread_id, ThreadStore(state), ENGINE, MemoryEffects(state), SETTINGS),
        )
        assert isinstance(request, CreateThread)
        answer = await service.create(request)
        return self._answer(request.method, request.answers, answer.model_dump_json().encode())

    async def owner_call(self, owner, request):
        assert isinstance(request, AddThread) and request.safe_to_repeat()
        if self.failures:
            self.failures -= 1
            raise self._unavailable(request.method, owner, TimeoutError())
        listed = self.lists.setdefault(owner, [])
        if request.id not in listed:
            listed.append(request.id)
        return Listed()


def test_a_503_never_hides_a_thread_it_made() -> None:
    client, caller = ThreadsInMemory(failures=1), Caller(owner="ann")
    with pytest.raises(Unreachable) as unlisted:
        asyncio.run(open_thread(client, caller, None, CreateThread(owner="ann")))
    problem = unlisted.value
    made, key = problem.extra["thread_id"], problem.extra["idempotency_key"]
    assert problem.status == 503 and made in problem.detail and key in problem.detail
    assert problem.headers["Idempotency-Key"] == key
    assert list(client.services) == [made]  # the thread was made...
    assert client.lists.get("ann", []) == []  # ...and is in nobody's list yet
    thread = asyncio.run(open_thread(client, caller, key, CreateThread(owner="ann")))
    assert thread.id == made and list(client.services) == [made]
    assert client.lists["ann"] == [made]
