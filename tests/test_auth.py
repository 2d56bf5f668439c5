"""Who may do what: bearer tokens, thread ownership on every route, and other services
calling through Dapr service invocation with their app-id."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from actors.dapr_host.watchdog import job_name
from tests.conftest import Api, stored_rows
from tests.dapr_peers import caller_sidecar
from threadhost.processes import free_port
from threadhost.stack import Stack

SECRET = "test-signing-secret-0123456789abcdef"
ISSUER, AUDIENCE = "https://issuer.test", "threadhost"
APP_TOKEN = "app-token-for-sidecars-42"


def token(sub: str, key: object = SECRET, algorithm: str = "HS256", **claims: object) -> str:
    body = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300, **claims}
    headers = {"kid": "k1"} if algorithm != "HS256" else None
    return jwt.encode(body, key, algorithm=algorithm, headers=headers)


def as_user(base_url: str, bearer: str) -> Api:
    api = Api(base_url)
    api.http.headers["authorization"] = f"Bearer {bearer}"
    return api


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def secured(stack_config, stacks, tmp_path, rsa_key) -> Stack:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "k1", "use": "sig"}]}))
    config = stack_config(
        env={
            "THREADHOST_AUTH_MODE": "jwt",
            "THREADHOST_JWT_JWKS_FILE": str(jwks),
            "THREADHOST_JWT_ISSUER": ISSUER,
            "THREADHOST_JWT_AUDIENCE": AUDIENCE,
            "APP_API_TOKEN": APP_TOKEN,
            "THREADHOST_SERVICE_CALLERS": '["support-portal"]',
        }
    )
    stack = Stack(config, split=True)
    stacks.append(stack)
    stack.start()
    return stack


def test_another_users_thread_is_404_on_every_route(secured, rsa_key) -> None:
    alice = as_user(secured.api.url, token("alice", rsa_key, "RS256"))
    bob = as_user(secured.api.url, token("bob", rsa_key, "RS256"))
    thread = alice.create_thread(agent="support")
    run = alice.say(thread, "Where is my order 1001?")["run"]["run_id"]
    base = f"/v1/threads/{thread}"
    refused = [
        bob.http.get(base),
        bob.http.get(f"{base}/messages"),
        bob.http.post(f"{base}/messages", json={"content": "mine now"}),
        bob.http.get(f"{base}/runs/{run}"),
        bob.http.get(f"{base}/runs/{run}/events"),
        bob.http.get(f"{base}/runs/{run}/events", headers={"accept": "text/event-stream"}),
    ]
    assert [r.status_code for r in refused] == [404] * len(refused)
    assert len(alice.history(thread)) == 7  # bob's message was not added


def test_another_user_cannot_answer_a_waiting_run(secured, rsa_key) -> None:
    alice = as_user(secured.api.url, token("alice", rsa_key, "RS256"))
    bob = as_user(secured.api.url, token("bob", rsa_key, "RS256"))
    thread = alice.create_thread(agent="asker")
    run = alice.say(thread, "Cancel my order.")["run"]
    answer = {
        "actions": [
            {
                "type": "input",
                "call_id": run["required_action"][0]["call_id"],
                "answer": "bob's order",
            }
        ]
    }
    url = f"/v1/threads/{thread}/runs/{run['run_id']}"
    assert bob.http.post(f"{url}/resume", json=answer).status_code == 404
    assert bob.http.post(f"{url}/cancel").status_code == 404
    assert alice.run(thread, run["run_id"])["status"] == "requires_action"
    answer["actions"][0]["answer"] = "Order 1002"
    resumed = alice.http.post(f"{url}/resume", json=answer)
    assert resumed.json()["run"]["status"] == "completed"
    assert "bob's order" not in [m["content"] for m in alice.messages(thread)]


@pytest.mark.parametrize(
    "bad",
    [
        "missing",
        "expired",
        "wrong-audience",
        "unsigned",
        "wrong-key",
        "wrong-issuer",
        "hmac-with-the-public-key",
    ],
)
def test_tokens_that_must_be_refused(secured, rsa_key, bad) -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bearer = {
        "expired": lambda: token("alice", rsa_key, "RS256", exp=int(time.time()) - 10),
        "wrong-audience": lambda: token("alice", rsa_key, "RS256", aud="someone-else"),
        "unsigned": lambda: jwt.encode(
            {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300},
            None,
            algorithm="none",
        ),
        "wrong-key": lambda: token("alice", other_key, "RS256"),
        "wrong-issuer": lambda: token("alice", rsa_key, "RS256", iss="https://evil.test"),
        # An HS256 token where published keys are expected (the key-confusion attack).
        "hmac-with-the-public-key": lambda: token("alice"),
    }.get(bad)
    headers = {"authorization": f"Bearer {bearer()}"} if bearer else {}
    response = httpx.post(f"{secured.api.url}/v1/threads", json={}, headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["type"].endswith("/unauthorized")
    if bearer:
        assert headers["authorization"][7:] not in response.text


@pytest.mark.parametrize("sub", ["", "   "])
def test_a_token_without_a_usable_subject_is_refused_and_writes_nothing(
    secured, rsa_key, sub
) -> None:
    rows = stored_rows(secured.config)
    bearer = {"authorization": f"Bearer {token(sub, rsa_key, 'RS256')}"}
    for method, path in (("GET", "/v1/threads"), ("POST", "/v1/threads")):
        response = httpx.request(
            method, f"{secured.api.url}{path}", json={}, headers=bearer, timeout=30
        )
        assert response.status_code == 401, response.text
        assert '"sub"' in response.json()["detail"]
    assert stored_rows(secured.config) == rows


def test_people_whose_claims_hold_separators_stay_apart(secured, rsa_key) -> None:
    """Owners are namespaced: a subject with ':' or '/' cannot become another's owner."""
    first = as_user(secured.api.url, token("a/b", rsa_key, "RS256"))
    second = as_user(secured.api.url, token("a%2Fb", rsa_key, "RS256"))
    thread = first.create_thread()
    assert second.http.get(f"/v1/threads/{thread}").status_code == 404
    assert first.http.get(f"/v1/threads/{thread}").status_code == 200


def test_a_forged_service_identity_is_refused(secured) -> None:
    """Straight to the gateway's port, claiming to be an allowed app: no sidecar token."""
    response = httpx.post(
        f"{secured.api.url}/v1/threads",
        json={},
        headers={"dapr-caller-app-id": "support-portal"},
        timeout=30,
    )
    assert response.status_code == 401


def test_another_service_holds_a_conversation_through_service_invocation(
    secured, tmp_path, stacks, rsa_key
) -> None:
    sidecar, gateway = caller_sidecar(secured, "support-portal", tmp_path)
    stacks.append(sidecar)
    with httpx.Client(base_url=gateway, timeout=60) as portal:
        thread = portal.post("/v1/threads", json={"agent": "support"}).json()["id"]
        first = portal.post(f"/v1/threads/{thread}/messages", json={"content": "Order 1001?"})
        second = portal.post(f"/v1/threads/{thread}/messages", json={"content": "Thanks"})
        history = portal.get(f"/v1/threads/{thread}/messages").json()["messages"]
    assert first.status_code == second.status_code == 200
    shipped = "Order 1001 has shipped and is with the carrier; it is due in 2 days."
    assert first.json()["reply"] == second.json()["reply"] == shipped
    assert [m["content"] for m in history if m["role"] == "user"] == ["Order 1001?", "Thanks"]
    # The thread belongs to the service: a person's valid token does not reach it, even
    # one whose subject is spelled like the service's owner.
    for sub in ("alice", "app:support-portal", "app%3Asupport-portal"):
        person = as_user(secured.api.url, token(sub, rsa_key, "RS256"))
        assert person.http.get(f"/v1/threads/{thread}").status_code == 404
        assert thread not in [t["id"] for t in person.http.get("/v1/threads").json()["threads"]]


def test_a_service_that_is_not_allowed_gets_403(secured, tmp_path, stacks) -> None:
    sidecar, gateway = caller_sidecar(secured, "unknown-service", tmp_path)
    stacks.append(sidecar)
    response = httpx.post(f"{gateway}/v1/threads", json={}, timeout=60)
    assert response.status_code == 403


def test_actor_methods_and_reads_are_for_sidecars_only(secured, rsa_key) -> None:
    """The actor host's port answers daprd's callbacks; without Dapr's app token they are
    refused, so nobody can call an actor method directly with a forged owner."""
    alice = as_user(secured.api.url, token("alice", rsa_key, "RS256"))
    thread = alice.create_thread()
    host = secured.apps[0].url
    forged = httpx.put(
        f"{host}/actors/Thread/{thread}/method/Describe", json={"owner": "alice"}, timeout=30
    )
    read = httpx.put(
        f"{host}/actors/ThreadReader/{thread}/method/ReadRun",
        json={"owner": "alice", "run_id": "x"},
        timeout=30,
    )
    job = httpx.post(f"{host}/job/{job_name(thread)}", json={}, timeout=30)
    assert (forged.status_code, read.status_code, job.status_code) == (403, 403, 403)
    # A problem document, and nothing of the thread.
    assert forged.json()["type"].endswith("/forbidden") and thread not in forged.text


def test_keys_from_a_jwks_url_and_a_tenant_claim(stack_config, stacks, rsa_key) -> None:
    """RS256 keys fetched from a JWKS URL; the tenant claim scopes owners, so the same
    subject in another tenant is someone else."""
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    server = JwksServer({"keys": [{**public, "kid": "k1", "use": "sig"}]})
    stacks.append(server)
    config = stack_config(
        env={
            "THREADHOST_AUTH_MODE": "jwt",
            "THREADHOST_JWT_JWKS_URL": server.url,
            "THREADHOST_JWT_ISSUER": ISSUER,
            "THREADHOST_JWT_AUDIENCE": AUDIENCE,
            "THREADHOST_TENANT_CLAIM": "org",
            "APP_API_TOKEN": APP_TOKEN,
        }
    )
    stack = Stack(config)
    stacks.append(stack)
    stack.start()
    acme = as_user(stack.api.url, token("sam", rsa_key, "RS256", org="acme"))
    globex = as_user(stack.api.url, token("sam", rsa_key, "RS256", org="globex"))
    # While the identity provider holds the first key fetch, the gateway's event loop
    # goes on: another request is answered before the fetch is let through.
    server.gate.clear()
    with ThreadPoolExecutor(1) as pool:
        creating = pool.submit(acme.create_thread)
        assert server.asked.wait(30), "the gateway did not fetch the JWKS"
        assert httpx.get(f"{stack.api.url}/health", timeout=10).status_code == 200
        assert not creating.done()
        server.gate.set()
        thread = creating.result(timeout=30)
    assert acme.http.get(f"/v1/threads/{thread}").status_code == 200
    assert globex.http.get(f"/v1/threads/{thread}").status_code == 404
    untenanted = as_user(stack.api.url, token("sam", rsa_key, "RS256"))
    refused = untenanted.http.get("/v1/threads")
    assert refused.status_code == 401 and '"org"' in refused.json()["detail"]


def test_a_rotated_key_is_taken_within_seconds_whatever_junk_arrives(
    stack_config, stacks, rsa_key
) -> None:
    """The identity provider rotates its keys while tokens with made-up key ids keep
    coming (each would make the gateway ask for the keys again): a valid token signed
    with the new key is accepted within seconds, and the provider is not asked at every
    junk token. Its first answer failing refuses tokens for seconds, not a minute."""
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(key: rsa.RSAPrivateKey, kid: str) -> dict:
        return {
            **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())),
            "kid": kid,
            "use": "sig",
        }

    server = JwksServer({"keys": [jwk(rsa_key, "k1")]})
    server.failing = True
    stacks.append(server)
    config = stack_config(
        env={
            "THREADHOST_AUTH_MODE": "jwt",
            "THREADHOST_JWT_JWKS_URL": server.url,
            "THREADHOST_JWT_ISSUER": ISSUER,
            "THREADHOST_JWT_AUDIENCE": AUDIENCE,
            "APP_API_TOKEN": APP_TOKEN,
        }
    )
    stack = Stack(config, split=True)
    stacks.append(stack)
    stack.start()
    url = f"{stack.api.url}/v1/threads"

    def status(bearer: str) -> int:
        return httpx.get(url, headers={"authorization": f"Bearer {bearer}"}, timeout=30).status_code

    junk = jwt.encode(
        {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300},
        rsa_key,
        algorithm="RS256",
        headers={"kid": "made-up"},
    )
    assert status(token("ann", rsa_key, "RS256")) == 401  # the provider fails
    server.failing = False
    started = time.monotonic()
    while status(token("ann", rsa_key, "RS256")) != 200:
        assert status(junk) == 401
        assert time.monotonic() - started < 15, "a provider that came back was not asked"
        time.sleep(0.5)
    server.jwks = {"keys": [jwk(rsa_key, "k1"), jwk(rotated, "k2")]}
    fresh = jwt.encode(
        {"sub": "ann", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300},
        rotated,
        algorithm="RS256",
        headers={"kid": "k2"},
    )
    started, fetches, junk_sent = time.monotonic(), server.fetches, 0
    while status(fresh) != 200:
        for _ in range(5):  # junk keeps coming: each asks the gateway for an unknown key
            assert status(junk) == 401
            junk_sent += 1
        assert time.monotonic() - started < 15, "the rotated key was not taken in time"
        time.sleep(0.2)
    took = time.monotonic() - started
    assert took < 12, took
    # Asked at most once per refresh period, not once per junk token.
    assert server.fetches - fetches <= 1 + took / 5 + 1, (server.fetches - fetches, junk_sent)


class JwksServer:
    """Serves a JWKS document on a loopback port, as an identity provider would."""

    def __init__(self, jwks: dict) -> None:
        import http.server
        import threading

        # The keys it serves now (a test rotates them), and whether it is failing.
        self.jwks, self.failing, self.fetches = jwks, False, 0
        # A test may hold answers back (clear `gate`) and learn when one is asked for.
        self.gate, self.asked = threading.Event(), threading.Event()
        self.gate.set()
        gate, asked, server = self.gate, self.asked, self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                asked.set()
                gate.wait(30)
                server.fetches += 1
                body = json.dumps(server.jwks).encode()
                self.send_response(503 if server.failing else 200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
