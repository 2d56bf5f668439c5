"""The Kubernetes overlays run as written: every Deployment's replicas as local processes,
each with the daprd its annotations describe, Sentry with mTLS on, the rendered
Configurations, Components and Resiliency (tests/rehearsal.py says how, and what had to
be translated). The prod overlay: two gateways, three actor hosts, PostgreSQL state,
Redis streams for run events, JWTs from an identity provider."""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import Api, assertion_signing_key, running_postgres, running_redis, wait_for
from tests.dapr_peers import PeerApp
from tests.deploy_tools import kustomize_build
from tests.rehearsal import (
    ControlPlane,
    Kubernetes,
    OtlpCollector,
    Pod,
    start_pods,
    stop_pod,
    terminate_pod,
)
from tests.test_auth import JwksServer
from tests.test_streaming import read_sse, stream_cut_and_resumed
from threadhost.processes import Process, free_port
from threadhost.runtime import PROJECT_ROOT, dapr_bin_dir

# What k8s/base/gateway.yaml says of the identity provider.
ISSUER, AUDIENCE = "https://login.example.com/", "threadhost"
JWKS_URL = "https://login.example.com/.well-known/jwks.json"
OTLP = "otel-collector.observability.svc.cluster.local:4317"
TEST_AGENTS = Path(__file__).parent / "agents"
# An agent whose tools are methods of another team's service, `ledger`, in threadhost's
# namespace: one its access control lets the actor hosts call, one it does not.
LEDGER_DESK = {
    "name": "ledger-desk",
    "service_tools": [
        {
            "name": "lookup_invoice",
            "app_id": "ledger",
            "method": "tools/invoices/lookup",
            "parameters": {"type": "object", "properties": {"invoice_id": {"type": "string"}}},
        },
        {"name": "refund", "app_id": "ledger", "method": "private/refund"},
    ],
    "script": [
        {
            "tool_calls": [
                {"name": "lookup_invoice", "arguments": {"invoice_id": "I-7"}},
                {"name": "refund"},
            ]
        },
        "Invoice I-7 is paid; I may not refund it.",
    ],
}
# The ledger's own Configuration: the actor hosts (app-id threads, namespace threadhost,
# known by their mTLS identity) may POST to /tools/*, nothing else; nobody else anything.
LEDGER_CONFIGURATION = {
    "apiVersion": "dapr.io/v1alpha1",
    "kind": "Configuration",
    "metadata": {"name": "ledger"},
    "spec": {
        "accessControl": {
            "defaultAction": "deny",
            "trustDomain": "public",
            "policies": [
                {
                    "appId": "threads",
                    "defaultAction": "deny",
                    "trustDomain": "public",
                    "namespace": "threadhost",
                    "operations": [{"name": "/tools/**", "httpVerb": ["POST"], "action": "allow"}],
                }
            ],
        }
    },
}


# An agent whose tool answers the invoices of the end user it is called for: the accounts
# service verifies the host's end-user assertion with the gateway's published keys (an
# app-id of its own: the ledger of another test has just stopped, and name resolution
# may still answer with its address).
LEDGER_MINE = {
    "name": "ledger-mine",
    "service_tools": [
        {"name": "my_invoices", "app_id": "accounts", "method": "tools/invoices/mine"}
    ],
    "script": [{"tool_calls": [{"name": "my_invoices"}]}, "Here they are."],
}
# The key that signs end-user assertions, as the operator puts it in threadhost-api-keys.
ASSERTION_KEY = assertion_signing_key()
END_USER = "threadhost-end-user"


def documented_secrets() -> dict[str, list[str]]:
    """docs/deploy.md's table of the Secrets an operator creates for prod."""
    text = (PROJECT_ROOT / "docs" / "deploy.md").read_text()
    rows = re.findall(r"^\| `(threadhost-[a-z-]+)` \| (.+) \|$", text, re.M)
    return {name: re.findall(r"`([a-z-]+)`", keys) for name, keys in rows}


def test_the_docs_name_every_secret_prod_reads() -> None:
    objects = kustomize_build(PROJECT_ROOT / "k8s" / "overlays" / "prod")
    text = json.dumps(objects)
    read = {(ref["name"], ref["key"]) for ref in _secret_refs(objects)}
    read |= {(m, "token") for m in re.findall(r'"dapr.io/app-token-secret": "([^"]+)"', text)}
    documented = {(name, key) for name, keys in documented_secrets().items() for key in keys}
    assert read <= documented, f"read but not documented: {read - documented}"
    # threadhost-api-keys is read by the app through the secret store, by name.
    assert {name for name, _ in documented - read} <= {"threadhost-api-keys"}


def _secret_refs(node: object) -> Iterator[dict]:
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            yield node["secretKeyRef"]
        for value in node.values():
            yield from _secret_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _secret_refs(value)


@dataclass
class Cluster:
    kube: Kubernetes
    pods: list[Pod]
    control_plane: ControlPlane
    redis: str
    signing_key: rsa.RSAPrivateKey
    folder: Path
    bin_dir: Path
    started_in: float
    collector: OtlpCollector

    def of(self, deployment: str) -> list[Pod]:
        return [p for p in self.pods if p.name.startswith(deployment + "-")]

    def add(self, deployment: str) -> Pod:
        """A new replica of `deployment` (its own name and ports), started and ready."""
        pod = self.kube.pod(deployment, f"{deployment}-{secrets.token_hex(3)}", self.control_plane)
        start_pods([pod], self.bin_dir, self.folder / "logs")
        self.pods.append(pod)
        return pod

    def remove(self, pod: Pod) -> float:
        """The pod goes as the kubelet makes it go; returns how long it took."""
        self.pods.remove(pod)
        return terminate_pod(pod)

    def user(self, pod: Pod, sub: str = "alice") -> Api:
        token = jwt.encode(
            {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600},
            self.signing_key,
            algorithm="RS256",
            headers={"kid": "k1"},
        )
        api = Api(pod.url)
        api.http.headers["authorization"] = f"Bearer {token}"
        return api

    def caller_sidecar(self, app_id: str, namespace: str) -> tuple[Process, str]:
        """Another service's daprd (no app behind it), in its own namespace, with an mTLS
        identity from Sentry like every sidecar of the cluster."""
        port = free_port()
        sidecar = Process(
            f"{app_id}-daprd",
            [
                str(self.bin_dir / "daprd"),
                "--app-id",
                app_id,
                "--mode",
                "standalone",
                "--dapr-listen-addresses",
                "127.0.0.1",
                "--dapr-http-port",
                str(port),
                "--dapr-grpc-port",
                str(free_port()),
                "--dapr-internal-grpc-port",
                str(free_port()),
                "--metrics-port",
                str(free_port()),
                "--metrics-listen-address",
                "127.0.0.1",
                *self.control_plane.daprd_flags(),
                "--log-level",
                "warn",
            ],
            self.folder / "logs",
            env={
                "DAPR_HOST_IP": "127.0.0.1",
                "NAMESPACE": namespace,
                **self.control_plane.trust_env(),
            },
        )
        sidecar.wait_http_ok(f"http://127.0.0.1:{port}/v1.0/healthz/outbound", 60)
        return sidecar, f"http://127.0.0.1:{port}/v1.0/invoke"


def _identity_provider() -> tuple[rsa.RSAPrivateKey, JwksServer]:
    """A signing key, and its JWKS served on loopback in place of login.example.com."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return key, JwksServer({"keys": [{**public, "kid": "k1", "use": "sig"}]})


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    bin_dir = dapr_bin_dir("sentry")
    folder = tmp_path_factory.mktemp("prod")
    key, identity = _identity_provider()
    control_plane, collector = ControlPlane(bin_dir, folder), OtlpCollector()
    pods: list[Pod] = []
    (folder / "agents").mkdir()
    (folder / "agents" / "ledger-desk.json").write_text(json.dumps(LEDGER_DESK))
    (folder / "agents" / "ledger-mine.json").write_text(json.dumps(LEDGER_MINE))
    with running_redis(folder) as redis_host, running_postgres() as postgres:
        try:
            began = time.monotonic()
            control_plane.start()
            kube = Kubernetes(
                kustomize_build(PROJECT_ROOT / "k8s" / "overlays" / "prod"),
                hosts={JWKS_URL: identity.url, OTLP: collector.address},
                folder=folder,
                # What the operator creates first: docs/deploy.md's table, filled in.
                operator_secrets={
                    "threadhost-api-keys": {
                        "openai-api-key": "",
                        "anthropic-api-key": "",
                        "assertion-signing-key": ASSERTION_KEY,
                    },
                    "threadhost-app-token": {"token": secrets.token_hex(32)},
                    "threadhost-redis": {"host": redis_host, "password": ""},
                    "threadhost-postgres": {"connection-string": postgres},
                },
                # The operator's own agents, baked into their image: the tests' ones.
                # Stopped replicas' event groups go within seconds, not half a minute.
                app_env={
                    "THREADHOST_AGENTS_DIRS": json.dumps(
                        [str(PROJECT_ROOT / "agents"), str(TEST_AGENTS), str(folder / "agents")]
                    ),
                    "THREADHOST_EVENT_GROUP_SWEEP_SECONDS": "1",
                    # Generous: each end user's spending shows on its own.
                    "THREADHOST_QUOTAS": '{"end_user": {"day": {"tokens": 100000000}}}',
                },
            )
            pods = kube.pods(control_plane)
            start_pods(pods, bin_dir, folder / "logs")
            cluster = Cluster(
                kube,
                pods,
                control_plane,
                redis_host,
                key,
                folder,
                bin_dir,
                time.monotonic() - began,
                collector,
            )
            yield cluster
        finally:
            for pod in pods:  # the cluster's list: those it added too
                stop_pod(pod)
            control_plane.stop()
            identity.stop()
            collector.stop()


def test_prod_starts_as_written_and_holds_a_conversation(prod: Cluster) -> None:
    gateways, hosts = prod.of("threadhost-gateway"), prod.of("threadhost-actors")
    assert (len(gateways), len(hosts)) == (2, 3)
    print(f"prod overlay healthy {prod.started_in:.1f} s after start")
    first, second = prod.user(gateways[0]), prod.user(gateways[1])
    thread = first.create_thread(agent="support")
    reply = first.say(thread, "Where is my order 1001?")
    run_id = reply["run"]["run_id"]
    # The other replica reads the run and its events through the actor host: the
    # access-control policy lets the gateway invoke it.
    assert second.run(thread, run_id)["status"] == "completed"
    events = second.events(thread, run_id)
    assert [e["seq"] for e in events] == list(range(len(events)))
    with second.http.stream(
        "POST", f"/v1/threads/{thread}/messages", json={"content": "And 1002?", "mode": "stream"}
    ) as sse:
        streamed = read_sse(sse.iter_lines())
    assert streamed[-1]["data"]["data"]["status"] == "completed"
    background = first.http.post(
        f"/v1/threads/{thread}/messages", json={"content": "Thanks", "mode": "background"}
    )
    assert background.status_code == 202
    wait_for(
        lambda: second.http.get(background.headers["location"]).json()["status"] == "completed",
        30,
        "the background run",
    )
    assert [m["content"] for m in second.messages(thread) if m["role"] == "user"] == [
        "Where is my order 1001?",
        "And 1002?",
        "Thanks",
    ]
    # The Configuration's tracing reaches the collector.
    wait_for(lambda: prod.collector.exports > 0, 30, "traces at the collector")
    # Someone else's token does not reach it.
    assert prod.user(gateways[1], "mallory").http.get(f"/v1/threads/{thread}").status_code == 404


def test_a_stream_cut_on_one_gateway_resumes_on_the_other(prod: Cluster) -> None:
    gateway_a, gateway_b = prod.of("threadhost-gateway")
    stream_cut_and_resumed(prod.user(gateway_a), prod.user(gateway_b))


def test_a_waiting_run_is_approved_through_the_other_gateway(prod: Cluster) -> None:
    gateway_a, gateway_b = prod.of("threadhost-gateway")
    api_a, api_b = prod.user(gateway_a), prod.user(gateway_b)
    thread = api_a.create_thread(agent="approvals")
    paused = api_a.http.post(
        f"/v1/threads/{thread}/messages", json={"content": "Please cancel order 1002."}
    ).json()["run"]
    assert paused["status"] == "requires_action"
    [action] = paused["required_action"]
    resumed = api_b.http.post(
        f"/v1/threads/{thread}/runs/{paused['run_id']}/resume",
        json={"actions": [{"type": "approval", "call_id": action["call_id"], "approved": True}]},
    )
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["run"]["status"] == "completed"


def test_access_control_holds_by_mtls_identity(prod: Cluster) -> None:
    """support-portal (allowed, namespace default) holds a conversation through Dapr; a
    service that is not listed is refused by Dapr itself, whatever headers it sends; and
    the allowed caller cannot go around the gateway to the actor host's reads."""
    portal, portal_url = prod.caller_sidecar("support-portal", "default")
    intruder, intruder_url = prod.caller_sidecar("order-service", "default")
    try:
        gateway = "gateway.threadhost"
        with httpx.Client(base_url=f"{portal_url}/{gateway}/method", timeout=60) as client:
            thread = client.post("/v1/threads", json={"agent": "support"})
            assert thread.status_code == 201, thread.text
            turn = client.post(
                f"/v1/threads/{thread.json()['id']}/messages", json={"content": "Order 1001?"}
            )
            assert turn.status_code == 200, turn.text
        refused = httpx.post(
            f"{intruder_url}/{gateway}/method/v1/threads",
            json={},
            headers={"dapr-caller-app-id": "support-portal"},
            timeout=60,
        )
        assert refused.status_code == 403, refused.text
        # The actor hosts take no service invocation from anyone.
        around = httpx.get(f"{portal_url}/threads.threadhost/method/internal/actors", timeout=60)
        assert around.status_code == 403, around.text
    finally:
        portal.stop()
        intruder.stop()


def test_a_service_tool_goes_through_the_mesh_and_its_access_control(prod: Cluster) -> None:
    """The actor host calls the ledger through its sidecar, over mTLS: the ledger's access
    control lets it look an invoice up and refuses a refund, and the model is told so."""
    configuration = prod.folder / "ledger.yaml"
    configuration.write_text(json.dumps(LEDGER_CONFIGURATION))
    ledger = PeerApp(
        "ledger",
        "tests.fakes.tool_service",
        "{port}",
        bin_dir=prod.bin_dir,
        logs=prod.folder / "logs",
        daprd_flags=[*prod.control_plane.daprd_flags(), "--config", str(configuration)],
        env={"NAMESPACE": "threadhost", **prod.control_plane.trust_env()},
    )
    try:
        api = prod.user(prod.of("threadhost-gateway")[0])
        thread = api.create_thread(agent="ledger-desk")
        answer = api.say(thread, "Refund invoice I-7, please.")
        assert answer["reply"] == "Invoice I-7 is paid; I may not refund it."
        results = {m["tool_name"]: m for m in api.messages(thread) if m["role"] == "tool"}
        assert not results["lookup_invoice"]["is_error"]
        assert json.loads(results["lookup_invoice"]["content"])["status"] == "paid"
        refused = results["refund"]
        assert refused["is_error"] and "answered 403" in refused["content"], refused
        assert "access control" in refused["content"], refused["content"]
        seen = [
            r
            for r in httpx.get(f"{ledger.url}/seen").json()
            if r["path"].startswith(("/tools/", "/private/"))
        ]
        assert [r["path"] for r in seen] == ["/tools/invoices/lookup"]
        assert seen[0]["headers"]["dapr-caller-app-id"] == "threads"
    finally:
        ledger.stop()


def test_a_service_acts_for_its_end_users_by_its_own_keys(prod: Cluster) -> None:
    """support-portal, two replicas (each its own daprd, mTLS identity from Sentry, the
    gateway's access-control entry), opens threads for three end users by its own keys
    at once: one thread per end user and key, each end user's list, limits and quota
    apart; the accounts service's tool verifies the end user from the host's signed
    assertion;
    and a person's token naming an end user is refused."""
    gateway = prod.of("threadhost-gateway")[0]
    ledger = PeerApp(
        "accounts",
        "tests.fakes.tool_service",
        "{port}",
        f"{gateway.url}/.well-known/jwks.json",
        "accounts",
        bin_dir=prod.bin_dir,
        logs=prod.folder / "logs",
        daprd_flags=[*prod.control_plane.daprd_flags(), "--config", str(_ledger_config(prod))],
        env={"NAMESPACE": "threadhost", **prod.control_plane.trust_env()},
    )
    replicas = [prod.caller_sidecar("support-portal", "default") for _ in range(2)]
    users, keys = ("alice", "bob", "carol"), ("order-1001", "order-1002")
    try:
        urls = [f"{url}/gateway.threadhost/method" for _, url in replicas]

        def open_thread(n: int) -> tuple[str, str, str]:
            user, key = users[n % 3], keys[n // 3 % 2]
            with httpx.Client(base_url=urls[n % 2], timeout=60) as portal:
                answer = portal.post(
                    "/v1/threads",
                    json={"key": key, "agent": "ledger-mine"},
                    headers={END_USER: user},
                )
            assert answer.status_code in (200, 201), answer.text
            return user, key, answer.json()["id"]

        with ThreadPoolExecutor(12) as pool:
            opened = list(pool.map(open_thread, range(24)))
        ids = {
            (user, key): {i for u, k, i in opened if (u, k) == (user, key)}
            for user in users
            for key in keys
        }
        assert all(len(found) == 1 for found in ids.values()), ids
        assert len({next(iter(found)) for found in ids.values()}) == 6

        def portal(user: str, replica: int = 0) -> httpx.Client:
            return httpx.Client(base_url=urls[replica], timeout=60, headers={END_USER: user})

        for user in users:
            with portal(user, 1) as client:
                listed = {t["id"] for t in client.get("/v1/threads?limit=100").json()["threads"]}
            assert listed == {next(iter(ids[user, key])) for key in keys}
        with portal("alice") as alice:
            said = alice.post("/v1/threads/key:order-1001/messages", json={"content": "Bills?"})
            assert said.status_code == 200, said.text
            history = alice.get("/v1/threads/key:order-1001/messages").json()["messages"]
            [result] = [m for m in history if m["role"] == "tool"]
            assert not result["is_error"], result["content"]
            assert json.loads(result["content"])["end_user"] == "alice"
            spent = wait_for(
                lambda: alice.get("/v1/usage").json()["quotas"][0]["used"]["tokens"], 30, "usage"
            )
            assert spent > 0
        with portal("carol", 1) as carol:
            [line] = carol.get("/v1/usage").json()["quotas"]
            assert (line["scope"], line["used"]["tokens"]) == ("end_user", 0)
        person = prod.user(gateway)
        person.http.headers[END_USER] = "alice"
        refused = person.http.get("/v1/threads")
        assert refused.status_code == 403 and END_USER in refused.json()["detail"]
    finally:
        for sidecar, _ in replicas:
            sidecar.stop()
        ledger.stop()


def _ledger_config(prod: Cluster) -> Path:
    configuration = prod.folder / "ledger.yaml"
    configuration.write_text(json.dumps(LEDGER_CONFIGURATION))
    return configuration


@pytest.mark.parametrize("killed", ["the pod", "its app container"])
def test_an_actor_host_killed_mid_run_the_run_completes_on_another(
    prod: Cluster, killed: str
) -> None:
    """The pod (every container), or only its app's process while its daprd lives on: the
    annotations' app health check then takes the pod out of the actor placement."""
    gateway = prod.of("threadhost-gateway")[0]
    api = prod.user(gateway)
    thread = api.create_thread(agent="slow")
    started = api.http.post(
        f"/v1/threads/{thread}/messages",
        json={"content": "Where is order 1001?", "mode": "background"},
    )
    run_url = started.headers["location"]
    hosts = prod.of("threadhost-actors")
    holder = wait_for(
        lambda: next((h for h in hosts if thread in json.dumps(_actor_stats(h))), None),
        10,
        "the host that runs the thread",
    )
    daprd, app = holder.processes
    for process in [app] if killed == "its app container" else [daprd, app]:
        process.kill()
    try:
        run = wait_for(
            lambda: (
                (r := api.http.get(run_url)).status_code == 200
                and r.json()["status"] == "completed"
                and r.json()
            ),
            60,
            "the run to complete on another host",
        )
        assert run["status"] == "completed"
        events = api.events(thread, run["run_id"])
        assert [e["seq"] for e in events] == list(range(len(events)))
        assert [m["content"] for m in api.messages(thread)].count("Where is order 1001?") == 1
    finally:  # its Deployment replaces it
        daprd.kill()
        prod.pods.remove(holder)
        prod.add("threadhost-actors")


@dataclass
class Person:
    """Someone holding a conversation through one gateway, a turn after another, in
    every mode in turn, until told to stop; keeps what they said and what went wrong."""

    api: Api
    agent: str
    said: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def converse(self, stop: threading.Event) -> None:
        self.thread = self.api.create_thread(agent=self.agent)
        while not stop.is_set() and len(self.failures) < 3:
            text = f"Where is order 1001? ({len(self.said)})"
            mode = ("wait", "stream", "background")[len(self.said) % 3]
            try:
                self._turn(text, mode)
            except (AssertionError, httpx.HTTPError) as exc:
                self.failures.append(f"{mode} turn {text!r}: {exc}")
            self.said.append(text)

    def history(self) -> list[dict]:
        """Every message of the thread, page after page."""
        messages: list[dict] = []
        offset: int | None = 0
        while offset is not None:
            page = self.api.http.get(
                f"/v1/threads/{self.thread}/messages", params={"offset": offset}
            )
            assert page.status_code == 200, page.text
            messages += page.json()["messages"]
            offset = page.json()["next_offset"]
        return messages

    def _turn(self, text: str, mode: str) -> None:
        http, url = self.api.http, f"/v1/threads/{self.thread}/messages"
        body = {"content": text, "mode": mode}
        if mode == "stream":
            with http.stream("POST", url, json=body) as sse:
                assert sse.status_code == 200, sse.read()
                last = read_sse(sse.iter_lines())[-1]["data"]
            assert last["data"]["status"] == "completed", last
            self.runs.append(last["run_id"])
            return
        answer = http.post(url, json=body)
        assert answer.status_code == (200 if mode == "wait" else 202), answer.text
        run = answer.json()["run"]
        self.runs.append(run["run_id"])
        if mode == "background":
            run = wait_for(
                lambda: (
                    (r := http.get(answer.headers["location"])).status_code == 200
                    and r.json()["status"] == "completed"
                    and r.json()
                ),
                60,
                "the background run",
            )
        assert run["status"] == "completed", run


@pytest.mark.timeout(600)
def test_a_rolling_restart_of_the_actor_hosts_loses_no_turn(prod: Cluster) -> None:
    """`kubectl rollout restart` of the actor hosts, as their Deployment's strategy says
    (maxSurge 1, maxUnavailable 0): a new pod starts and is ready, then an old one's
    containers get SIGTERM together, with terminationGracePeriodSeconds before SIGKILL;
    one old pod after another. Meanwhile six people talk through both gateways, in every
    mode, some to an agent whose model takes 3 s: every turn answers, every run
    completes, each message is stored once, and every run's events are gap-free."""
    deployment = prod.kube.deployment("threadhost-actors")
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    gateways = prod.of("threadhost-gateway")
    people = [
        Person(prod.user(gateways[n % 2], f"roller-{n}"), "slow" if n % 3 == 0 else "support")
        for n in range(6)
    ]
    stop = threading.Event()
    with ThreadPoolExecutor(len(people)) as pool:
        talking = [pool.submit(person.converse, stop) for person in people]

        def talked() -> bool:
            for future in talking:
                if future.done():
                    future.result()  # raises what stopped them
            return all(len(p.said) >= 2 for p in people)

        wait_for(talked, 60, "the first turns")
        took = []
        for old in prod.of("threadhost-actors"):
            prod.add("threadhost-actors")
            took.append(prod.remove(old))
        stop.set()
        for future in talking:
            future.result(timeout=120)
    print(
        f"old actor pods went {', '.join(f'{t:.1f}' for t in took)} s after SIGTERM; "
        f"{sum(len(p.said) for p in people)} turns meanwhile"
    )
    assert [f for p in people for f in p.failures] == []
    for person in people:
        user_said = [m["content"] for m in person.history() if m["role"] == "user"]
        assert user_said == person.said
        for run_id in person.runs:
            assert person.api.run(person.thread, run_id)["status"] == "completed"
            events = person.api.events(person.thread, run_id)
            assert [e["seq"] for e in events] == list(range(len(events)))
    assert all(
        t < deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] for t in took
    ), "an old pod had to be SIGKILLed"


def _actor_stats(pod: Pod) -> dict:
    token = pod.app_env["APP_API_TOKEN"]
    return httpx.get(
        f"{pod.url}/internal/actors", headers={"dapr-api-token": token}, timeout=10
    ).json()


@pytest.mark.timeout(600)
def test_run_event_streams_stay_bounded_across_a_rollout(prod: Cluster) -> None:
    """Streamed turns fill the run-event stream past its maxLenApprox and it stays near
    that length (2,000 turns with THREADHOST_SLOW_TESTS=1; the suite 700, about 7,000 events); and
    after the gateways are replaced (new pod names, as a rollout does) the old pods'
    consumer groups are gone."""
    gateways = prod.of("threadhost-gateway")
    # Ten people (each within the overlay's rate and concurrency limits).
    each = 200 if os.environ.get("THREADHOST_SLOW_TESTS") else 70
    apis = [prod.user(gateways[n % 2], f"person-{n}") for n in range(10)]
    threads = [api.create_thread(agent="support") for api in apis]

    def turns(n: int) -> None:
        for _ in range(each):
            with apis[n].http.stream(
                "POST",
                f"/v1/threads/{threads[n]}/messages",
                json={"content": "Order 1001?", "mode": "stream"},
            ) as sse:
                assert sse.status_code == 200, sse.read()
                assert read_sse(sse.iter_lines())[-1]["data"]["data"]["status"] == "completed"

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(turns, range(10)))
    client = redis.Redis.from_url(f"redis://{prod.redis}")
    published = client.xinfo_stream("run-events")["entries-added"]
    print(f"run-events: {client.xlen('run-events')} entries kept of {published}")
    assert published > 5000 and client.xlen("run-events") < 5000 * 1.5
    before = {g["name"].decode() for g in client.xinfo_groups("run-events")}
    assert before == {g.name for g in gateways}

    for old in gateways:  # a rollout: a new pod, then the old one goes
        prod.add("threadhost-gateway")
        prod.remove(old)
    wait_for(
        lambda: (
            {g["name"].decode() for g in client.xinfo_groups("run-events")}
            == {g.name for g in prod.of("threadhost-gateway")}
        ),
        30,
        "the old gateways' groups to go",
    )
