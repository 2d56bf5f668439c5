"""Services that act for their end users, through Dapr service invocation on the split
stack: the end user a service names, threads by the caller's own key (one thread however
many calls race for it), and what a person's token may not do."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
import openai
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import (
    TEST_AGENTS,
    assertion_signing_key,
    make_stack_config,
    stored_rows,
    wait_for,
)
from tests.dapr_peers import PeerApp, caller_sidecar
from tests.test_auth import APP_TOKEN, AUDIENCE, ISSUER, as_user, token
from threadhost.client import ThreadhostClient
from threadhost.processes import Process
from threadhost.stack import Stack

END_USER = "threadhost-end-user"
SHIPPED = "Order 1001 has shipped and is with the carrier; it is due in 2 days."


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# An agent whose tool answers the invoices of the end user it is called for: the billing
# service decides whose, from the host's signed assertion, not from the model.
BILLING_DESK = {
    "name": "billing-desk",
    "service_tools": [
        {"name": "my_invoices", "app_id": "billing", "method": "tools/invoices/mine"}
    ],
    "script": [{"tool_calls": [{"name": "my_invoices"}]}, "Here they are."],
}


@pytest.fixture(scope="module")
def mesh(
    dapr_bin: Path, tmp_path_factory: pytest.TempPathFactory, rsa_key: rsa.RSAPrivateKey
) -> Iterator[tuple[Stack, str]]:
    """A secured split stack that signs end-user assertions, the billing service beside
    it, and the invoke URL of the support portal's own daprd."""
    folder = tmp_path_factory.mktemp("services")
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwks = folder / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "k1", "use": "sig"}]}))
    agents = folder / "agents"
    agents.mkdir()
    (agents / "billing-desk.json").write_text(json.dumps(BILLING_DESK))
    env = {
        "THREADHOST_AUTH_MODE": "jwt",
        "THREADHOST_JWT_JWKS_FILE": str(jwks),
        "THREADHOST_JWT_ISSUER": ISSUER,
        "THREADHOST_JWT_AUDIENCE": AUDIENCE,
        "APP_API_TOKEN": APP_TOKEN,
        "THREADHOST_SERVICE_CALLERS": '["support-portal"]',
        # Run slots on, as the Kubernetes overlays ship them: a run's last state change
        # then reaches its owner with the slot handed back.
        "THREADHOST_MAX_CONCURRENT_RUNS": "20",
        "THREADHOST_ASSERTION_SIGNING_KEY": assertion_signing_key(),
        "THREADHOST_AGENTS_DIRS": json.dumps(
            [*json.loads(TEST_AGENTS["THREADHOST_AGENTS_DIRS"]), str(agents)]
        ),
    }
    config = make_stack_config(dapr_bin, folder, uuid.uuid4().hex[:10], env=env)
    with Stack(config, split=True) as stack:
        started: list[Process | PeerApp] = []
        try:
            # The gateway's keys, through the billing service's own sidecar.
            keys = f"/v1.0/invoke/{config.gateway_app_id}/method/.well-known/jwks.json"
            billing = PeerApp(
                "billing",
                "tests.fakes.tool_service",
                "{port}",
                "http://127.0.0.1:{dapr_http_port}" + keys,
                bin_dir=dapr_bin,
                logs=folder / "logs",
            )
            started.append(billing)
            sidecar, gateway = caller_sidecar(stack, "support-portal", folder)
            started.append(sidecar)
            yield stack, gateway
        finally:
            for item in started:
                item.stop()


def portal(mesh: tuple[Stack, str], end_user: str | None = None) -> httpx.Client:
    headers = {END_USER: end_user} if end_user is not None else {}
    return httpx.Client(base_url=mesh[1], timeout=60, headers=headers)


def test_one_thread_per_key_however_many_calls_race_for_it(mesh) -> None:
    key = f"order-{uuid.uuid4().hex[:6]}"

    def open_it(_: int) -> httpx.Response:
        with portal(mesh, "alice") as alice:
            return alice.post("/v1/threads", json={"key": key, "agent": "support"})

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(open_it, range(12)))
    assert sorted(a.status_code for a in answers) == [200] * 11 + [201], [a.text for a in answers]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    thread = answers[0].json()
    assert (thread["key"], thread["end_user"], thread["agent"]) == (key, "alice", "support")
    with portal(mesh, "alice") as alice:
        listed = [t for t in alice.get("/v1/threads").json()["threads"] if t.get("key") == key]
    assert [t["id"] for t in listed] == list(ids)


def test_a_key_continues_its_thread_on_every_door(mesh) -> None:
    key = f"chat-{uuid.uuid4().hex[:6]}"
    with portal(mesh, "bob") as bob:
        # The first message to a key that names no thread opens it.
        first = bob.post(f"/v1/threads/key:{key}/messages", json={"content": "Order 1001?"})
        assert first.status_code == 200, first.text
        thread_id = first.json()["thread_id"]
        assert bob.get(f"/v1/threads/key:{key}").json()["id"] == thread_id
    # The OpenAI SDK names the same thread by the same key. Its API key is not a token
    # of anyone's: through its sidecar, the service is known by its Dapr identity.
    client = openai.OpenAI(
        base_url=f"{mesh[1]}/v1", api_key="unused", default_headers={END_USER: "bob"}
    )
    chat = client.chat.completions.with_raw_response.create(
        model="support",
        messages=[{"role": "user", "content": "Thanks"}],
        extra_headers={"threadhost-thread-id": f"key:{key}"},
    )
    assert chat.headers["threadhost-thread-id"] == thread_id
    again = client.responses.create(model="support", input="Bye", conversation=f"key:{key}")
    assert again.conversation is not None and again.conversation.id == thread_id
    with portal(mesh, "bob") as bob:
        said = [m["content"] for m in bob.get(f"/v1/threads/key:{key}/messages").json()["messages"]]
    assert [text for text in said[::2]] == ["Order 1001?", "Thanks", "Bye"]


def test_each_end_user_is_apart_and_the_service_reaches_them_all(mesh, rsa_key) -> None:
    key = f"order-{uuid.uuid4().hex[:6]}"
    with portal(mesh, "carol") as carol, portal(mesh, "dave") as dave, portal(mesh) as service:
        mine = carol.post("/v1/threads", json={"key": key}).json()["id"]
        theirs = dave.post("/v1/threads", json={"key": key}).json()["id"]
        assert mine != theirs
        # Another end user of the same service: as if the thread did not exist.
        assert dave.get(f"/v1/threads/{mine}").status_code == 404
        assert dave.post(f"/v1/threads/{mine}/messages", json={"content": "hi"}).status_code == 404
        assert mine not in [t["id"] for t in dave.get("/v1/threads").json()["threads"]]
        # The service itself reaches each of its end users' threads.
        seen = service.get(f"/v1/threads/{mine}")
        assert seen.status_code == 200 and seen.json()["end_user"] == "carol"
        said = service.post(f"/v1/threads/{mine}/messages", json={"content": "From the desk"})
        assert said.status_code == 200, said.text
        # Deleting it takes it off its end user's list, not the service's.
        assert service.delete(f"/v1/threads/{mine}").status_code == 204
        assert mine not in [t["id"] for t in carol.get("/v1/threads").json()["threads"]]
        assert carol.get(f"/v1/threads/key:{key}").status_code == 404
    # A person never reaches an end user's thread, whatever their subject says.
    for sub in ("dave", "app:support-portal/user:dave"):
        person = as_user(mesh[0].api.url, token(sub, rsa_key, "RS256"))
        assert person.http.get(f"/v1/threads/{theirs}").status_code == 404


def test_a_persons_token_cannot_name_an_end_user(mesh, rsa_key) -> None:
    stack = mesh[0]
    before = len(stored_rows(stack.config))
    alice = as_user(stack.api.url, token("alice", rsa_key, "RS256"))
    alice.http.headers[END_USER] = "bob"
    refused = alice.http.post("/v1/threads", json={"key": "order-1"})
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert END_USER in refused.json()["detail"]
    # Without a token at all, the same.
    anonymous = httpx.get(f"{stack.api.url}/v1/threads", headers={END_USER: "bob"}, timeout=30)
    assert anonymous.status_code == 403
    assert len(stored_rows(stack.config)) == before


@pytest.mark.parametrize("name", ["", "two words", "x" * 201])
def test_an_end_user_name_outside_the_alphabet_is_a_422_naming_the_header(mesh, name) -> None:
    with portal(mesh) as service:
        answer = service.post("/v1/threads", json={}, headers={END_USER: name})
    assert answer.status_code == 422, answer.text
    assert END_USER in answer.json()["detail"]


@pytest.mark.parametrize("key", ["../x", "a b", "x" * 129, "ünï"])
def test_a_key_outside_the_alphabet_is_a_422(mesh, key) -> None:
    with portal(mesh, "erin") as erin:
        made = erin.post("/v1/threads", json={"key": key})
        assert made.status_code == 422 and "key" in made.text, made.text
        named = erin.get("/v1/threads/key:a%20b")
        assert named.status_code == 422, named.text


def test_a_service_tool_verifies_whom_it_is_called_for(mesh) -> None:
    """The billing service answers the invoices of the end user the host's assertion
    names (verified with the keys the gateway publishes, as docs/tools.md shows)."""
    for user, invoices in (("alice", ["INV-A1", "INV-A2"]), ("bob", ["INV-B1"])):
        with portal(mesh, user) as service:
            thread = service.post("/v1/threads", json={"agent": "billing-desk"}).json()["id"]
            said = service.post(f"/v1/threads/{thread}/messages", json={"content": "My bills?"})
            assert said.status_code == 200, said.text
            history = service.get(f"/v1/threads/{thread}/messages").json()["messages"]
        [result] = [m for m in history if m["role"] == "tool"]
        assert not result["is_error"], result["content"]
        assert json.loads(result["content"]) == {"end_user": user, "invoices": invoices}
    # A person's thread carries no end user: the same tool refuses to guess.
    with portal(mesh) as service:
        thread = service.post("/v1/threads", json={"agent": "billing-desk"}).json()["id"]
        service.post(f"/v1/threads/{thread}/messages", json={"content": "My bills?"})
        history = service.get(f"/v1/threads/{thread}/messages").json()["messages"]
    [result] = [m for m in history if m["role"] == "tool"]
    assert result["is_error"] and "no end-user assertion" in result["content"]


def test_the_published_keys_are_open_and_hold_no_private_part(mesh) -> None:
    keys = httpx.get(f"{mesh[0].api.url}/.well-known/jwks.json", timeout=30)
    assert keys.status_code == 200
    [key] = keys.json()["keys"]
    assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-256", "ES256")
    assert "d" not in key


def test_the_python_client_acts_for_end_users_by_key(mesh) -> None:
    key = f"order-{uuid.uuid4().hex[:6]}"

    async def scenario() -> tuple[str, str, str, list[str]]:
        async with ThreadhostClient(mesh[1]) as th:
            frank = th.for_end_user("frank")
            made = await frank.create_thread(agent="support", key=key)
            again = await frank.create_thread(agent="support", key=key)
            await frank.say(f"key:{key}", "Order 1001?")
            gina = await th.for_end_user("gina").create_thread(key=key)
            history = await frank.history(f"key:{key}")
            return made.id, again.id, gina.id, [m.content for m in history.messages]

    made, again, gina, said = asyncio.run(scenario())
    assert made == again != gina
    assert said[0] == "Order 1001?" and said[-1] == SHIPPED


def test_an_end_users_threads_by_status_and_metadata(mesh) -> None:
    """Listed from the owner's lists, without activating a thread: by state (a run
    waiting for approval, none) and by metadata."""
    with portal(mesh, "hana") as hana:
        waiting = hana.post(
            "/v1/threads", json={"agent": "approvals", "metadata": {"topic": "cancel"}}
        )
        idle = hana.post("/v1/threads", json={"metadata": {"topic": "billing"}}).json()["id"]
        waiting_id = waiting.json()["id"]
        paused = hana.post(f"/v1/threads/{waiting_id}/messages", json={"content": "Cancel 1002."})
        assert paused.json()["run"]["status"] == "requires_action", paused.text
        said = hana.post(f"/v1/threads/{idle}/messages", json={"content": "Hello"})
        assert said.json()["run"]["status"] == "completed"

        def listed(query: str) -> list[str]:
            return [t["id"] for t in hana.get(f"/v1/threads?{query}").json()["threads"]]

        # The thread tells its owner after the commit that changed its state.
        wait_for(lambda: listed("status=waiting") == [waiting_id], 30, "the waiting thread")
        wait_for(lambda: listed("status=idle") == [idle], 30, "the idle thread")
        assert listed("status=active") == []
        assert listed("metadata=topic%3Dbilling") == [idle]
        assert listed("metadata=topic%3Dcancel&status=waiting") == [waiting_id]
        bad = hana.get("/v1/threads?metadata=no-equals-sign")
        assert bad.status_code == 422 and "metadata" in bad.json()["detail"]
    # Another end user's lists hold none of them.
    with portal(mesh, "ivan") as ivan:
        assert ivan.get("/v1/threads?status=waiting").json()["threads"] == []


def test_a_service_lists_its_end_users_and_reaches_their_lists(mesh, rsa_key) -> None:
    users = [f"kim-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    for user in users:
        with portal(mesh, user) as client:
            for n in range(2):  # two threads each: the end user is listed once
                assert client.post("/v1/threads", json={"key": f"k{n}"}).status_code == 201
    with portal(mesh) as service:
        listed = service.get("/v1/end-users?limit=1000").json()["end_users"]
        assert [u for u in listed if u in users] == users[::-1]  # newest first
        with portal(mesh, users[0]) as first:
            assert len(first.get("/v1/threads").json()["threads"]) == 2
    person = as_user(mesh[0].api.url, token("kim", rsa_key, "RS256"))
    assert person.http.get("/v1/end-users").status_code == 403
