"""The prod overlay on a real one-node Kubernetes cluster (tests/kube/cluster.py), with
Dapr's control plane installed from its own Helm chart as docs/deploy.md says: Dapr's
injector adds the sidecars, its Sentry issues their certificates, the apiserver enforces
the namespace's "restricted" Pod Security Standard. Thread state in PostgreSQL (a database
outside the cluster, on the node), run events in a Redis inside it.

What this proves that the rehearsal (tests/rehearsal.py) cannot: the manifests are
accepted by a real apiserver and admission chain, the pods start from the images under
the pods' constraints (uid, read-only root, no capability), Dapr's real injector and
operator wire the sidecars (components, secrets, app token, mTLS), Services and their
names resolve, and a rolling restart and a deleted pod, carried out by Kubernetes' own
controllers and kubelet, lose nothing.

`./dev test-k8s` runs it (as root; the first run builds Kubernetes, about 5 minutes on
2 cores); it is not part of the default suite (`-m cluster`).
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import jwt
import pytest

from tests.conftest import PRIVATE_TO_THIS_MACHINE, Api, postgres_bin, wait_for
from tests.kube.cluster import (
    BIN,
    NODE_IP,
    NODE_NETWORK,
    POD_CIDR,
    SERVICE_CIDR,
    Cluster,
    build_tools,
)
from tests.test_rehearsal import Person
from threadhost.container_engine import Engine
from threadhost.images import PAUSE, REDIS, app_image, build_all, dapr_image, dapr_version
from threadhost.processes import Process, StartupError

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(os.geteuid() != 0, reason="the test cluster needs root"),
    pytest.mark.timeout(1800),
]

PROJECT = Path(__file__).resolve().parents[2]
NAMESPACE = "threadhost"
REGISTRY_IMAGE = "registry.example.com/threadhost:0.1.0"  # the prod overlay's image
ISSUER, AUDIENCE = "https://login.example.com/", "threadhost"
CLONE_NEWNET = 0x40000000
DAPR_IMAGES = ("daprd", "placement", "scheduler", "sentry", "operator", "injector")


@pytest.fixture(scope="module", autouse=True)
def _cluster_addresses() -> Iterator[None]:
    """The cluster's networks exist only in its namespace (tests/conftest.py's guard)."""
    networks = [ipaddress.ip_network(n) for n in (NODE_NETWORK, POD_CIDR, SERVICE_CIDR)]
    PRIVATE_TO_THIS_MACHINE.extend(networks)
    yield
    for network in networks:
        PRIVATE_TO_THIS_MACHINE.remove(network)


@contextmanager
def inside(namespace: str) -> Iterator[None]:
    """The calling thread (and threads and processes it starts) in the cluster's network
    namespace, then back: the test reaches Services as a process on the node does."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net") as home, open(f"/var/run/netns/{namespace}") as there:
        assert libc.setns(there.fileno(), CLONE_NEWNET) == 0, "cannot enter the cluster"
        try:
            yield
        finally:
            assert libc.setns(home.fileno(), CLONE_NEWNET) == 0


def _dapr_chart() -> Path:
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"github.com/dapr/dapr@v{dapr_version()}"],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout  # fmt: skip
    return Path(json.loads(out)["Dir"]) / "charts" / "dapr"


@contextmanager
def node_postgres(cluster: Cluster, password: str) -> Iterator[str]:
    """PostgreSQL on the node's address, as a managed database outside the cluster; the
    pods' network may connect with the password."""
    folder = Path(tempfile.mkdtemp(prefix="threadhost-kube-pg-"))
    shutil.chown(folder, "postgres")
    data = folder / "data"
    pwfile = folder / "password"
    pwfile.write_text(password)
    shutil.chown(pwfile, "postgres")
    user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*user, postgres_bin("initdb"), "-D", str(data), "-U", "threadhost",
         "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "--no-sync"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write("host all all 10.244.0.0/16 scram-sha-256\n")
    server = Process(
        "postgres",
        cluster._in_namespace(
            [*user, postgres_bin("postgres"), "-D", str(data), "-h", NODE_IP, "-p", "5432",
             "-k", str(folder), "-c", "fsync=off"]
        ),
        cluster.logs,
    )  # fmt: skip
    try:
        wait_for(
            lambda: (
                cluster.run(
                    postgres_bin("pg_isready"), "-h", NODE_IP, "-p", "5432", check=False
                ).find("accepting")
                >= 0
            ),
            30,
            "PostgreSQL",
        )
        yield (
            f"host={NODE_IP} port=5432 user=threadhost password={password} "
            "dbname=postgres sslmode=disable"
        )
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _secret(cluster: Cluster, name: str, **values: str) -> None:
    literals = [f"--from-literal={key.replace('_', '-')}={value}" for key, value in values.items()]
    cluster.kubectl("-n", NAMESPACE, "create", "secret", "generic", name, *literals)


class Prod:
    """The running overlay: people's tokens, the pods, the gateway's Service."""

    def __init__(self, cluster: Cluster, jwt_secret: str) -> None:
        self.cluster, self.jwt_secret = cluster, jwt_secret
        service = cluster.kubectl_json("-n", NAMESPACE, "get", "service", "threadhost-gateway")
        port = service["spec"]["ports"][0]["port"]
        self.url = f"http://{service['spec']['clusterIP']}:{port}"

    def user(self, sub: str) -> Api:
        token = jwt.encode(
            {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 1800},
            self.jwt_secret,
            algorithm="HS256",
        )
        api = Api(self.url)
        api.http.headers["authorization"] = f"Bearer {token}"
        return api

    def pods(self, app: str) -> list[dict]:
        listing = self.cluster.kubectl_json(
            "-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/name={app}"
        )
        return [p for p in listing["items"] if not p["metadata"].get("deletionTimestamp")]

    def rollout(self, deployment: str) -> None:
        self.cluster.kubectl(
            "-n", NAMESPACE, "rollout", "status", f"deployment/{deployment}", "--timeout=600s",
            timeout=660,
        )  # fmt: skip


@pytest.fixture(scope="module")
def prod() -> Iterator[Prod]:
    build_tools()
    with Engine(host_network=True) as engine:
        took = build_all(engine, lambda line: print(f"images: {line}"), cluster=True)
        print(f"images built: {took}")
        archive = Path(tempfile.mkdtemp(prefix="threadhost-kube-images-")) / "images.tar"
        images = [app_image(), REDIS, PAUSE, *(dapr_image(b) for b in DAPR_IMAGES)]
        engine.docker("save", "--output", str(archive), *images)
    started = time.monotonic()
    try:
        with Cluster() as cluster, inside(cluster.namespace):
            print(f"cluster: node ready in {time.monotonic() - started:.0f} s")
            cluster.load_images(archive, {app_image(): REGISTRY_IMAGE})
            archive.unlink()
            yield from _install(cluster)
    finally:
        shutil.rmtree(archive.parent, ignore_errors=True)
    _nothing_left_behind(Cluster())


def _nothing_left_behind(cluster: Cluster) -> None:
    """A stopped cluster leaves no process, mount, cgroup or network namespace."""
    assert cluster.mounts() == []
    assert cluster.cgroups_left() == []
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert cluster.namespace not in namespaces
    assert not Path("/var/log/containers").exists() or not any(
        str(cluster.root) in os.readlink(link) for link in Path("/var/log/containers").iterdir()
    )
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path("/proc", pid, "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        assert str(BIN) not in cmdline and str(cluster.root) not in cmdline, cmdline


def _install(cluster: Cluster) -> Iterator[Prod]:
    started = time.monotonic()
    # docs/deploy.md, step 1, with the images made here (daprio/<name>:<version>).
    cluster.helm(
        "install", "dapr", str(_dapr_chart()), "--namespace", "dapr-system",
        "--create-namespace", "--wait", "--timeout", "10m",
        "--set", "global.registry=daprio", "--set", f"global.tag={dapr_version()}",
        "--set", "dapr_placement.keepAliveTime=1s", "--set", "dapr_placement.keepAliveTimeout=2s",
        "--set", "dapr_sidecar_injector.sidecarDropALLCapabilities=true",
        # One node and no storage provisioner: the scheduler's etcd and placement's log
        # in memory.
        "--set", "dapr_scheduler.cluster.inMemoryStorage=true",
        "--set", "dapr_placement.cluster.forceInMemoryLog=true",
        timeout=700,
    )  # fmt: skip
    print(f"cluster: Dapr's control plane ready in {time.monotonic() - started:.0f} s")
    # The namespace first (the overlay's own file), then the Secrets the docs list.
    cluster.kubectl("apply", "-f", str(PROJECT / "k8s" / "overlays" / "prod" / "namespace.yaml"))
    redis_password, pg_password = secrets.token_hex(16), secrets.token_hex(16)
    jwt_secret = secrets.token_hex(32)
    with node_postgres(cluster, pg_password) as connection_string:
        _secret(cluster, "threadhost-api-keys", openai_api_key="", anthropic_api_key="")
        _secret(cluster, "threadhost-app-token", token=secrets.token_hex(32))
        _secret(
            cluster, "threadhost-redis",
            host=f"redis.{NAMESPACE}.svc.cluster.local:6379", password=redis_password,
        )  # fmt: skip
        _secret(cluster, "threadhost-postgres", connection_string=connection_string)
        _secret(cluster, "threadhost-test-jwt", secret=jwt_secret)
        cluster.kubectl(
            "-n", NAMESPACE, "apply", "-f", str(PROJECT / "tests" / "kube" / "redis.yaml")
        )
        cluster.kubectl("-n", NAMESPACE, "rollout", "status", "deployment/redis", "--timeout=120s")
        started = time.monotonic()
        cluster.kubectl("apply", "-k", str(PROJECT / "tests" / "kube" / "overlay"))
        prod = Prod(cluster, jwt_secret)
        prod.rollout("threadhost-actors")
        prod.rollout("threadhost-gateway")
        print(f"cluster: threadhost ready in {time.monotonic() - started:.0f} s")
        yield prod


def test_the_pods_run_with_dapr_sidecars_under_the_restricted_standard(prod: Prod) -> None:
    """Every app pod has Dapr's sidecar, added by the injector, and both containers run as
    the restricted profile demands: the namespace enforces it, so they could not start
    otherwise; the sidecar has its certificate from Sentry (its mTLS is on)."""
    for app in ("threadhost-gateway", "threadhost-actors"):
        pods = prod.pods(app)
        assert len(pods) == (3 if app == "threadhost-actors" else 2)
        for pod in pods:
            names = [c["name"] for c in pod["spec"]["containers"]]
            assert names == ["app", "daprd"], names
            for container in pod["spec"]["containers"]:
                context = container["securityContext"]
                assert context["capabilities"]["drop"] == ["ALL"], container["name"]
                assert context.get("allowPrivilegeEscalation") is False, container["name"]
            assert all(s["ready"] for s in pod["status"]["containerStatuses"])
    namespace = prod.cluster.kubectl_json("get", "namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # A pod below the standard is refused by the apiserver itself.
    with pytest.raises(StartupError, match="violates PodSecurity"):
        prod.cluster.kubectl("-n", NAMESPACE, "run", "rooted", "--image", REDIS, "--restart=Never")


def test_a_conversation_goes_through_the_gateway_service_to_an_actor_host(prod: Prod) -> None:
    api = prod.user("alice")
    thread = api.create_thread(agent="support")
    answer = api.say(thread, "Where is my order 1001?")
    assert answer["run"]["status"] == "completed", answer
    assert [role for role, _ in api.history(thread)][:2] == ["user", "assistant"]
    # Another person sees nothing of it.
    assert prod.user("bob").http.get(f"/v1/threads/{thread}").status_code == 404


def _talk_through(prod: Prod, disturb, label: str) -> None:
    """Six people talk (every mode, two agents) while `disturb` runs; nothing is lost."""
    people = [Person(prod.user(f"{label}-{n}"), "support") for n in range(6)]
    stop = threading.Event()
    pool = ThreadPoolExecutor(len(people))
    try:
        talking = [pool.submit(person.converse, stop) for person in people]

        def talked() -> bool:
            for future in talking:
                if future.done():
                    future.result()
            return all(len(p.said) >= 2 for p in people)

        wait_for(talked, 120, "the first turns")
        disturb()
        stop.set()
        for future in talking:
            future.result(timeout=180)  # a turn that never ends fails here, not hangs
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
    failures = [f for p in people for f in p.failures]
    assert failures == [], "\n".join(failures)
    for person in people:
        user_said = [m["content"] for m in person.history() if m["role"] == "user"]
        assert user_said == person.said
        for run_id in person.runs:
            assert person.api.run(person.thread, run_id)["status"] == "completed"
    print(f"{label}: {sum(len(p.said) for p in people)} turns, none lost")


def test_a_rolling_restart_of_the_actor_hosts_loses_no_turn(prod: Prod) -> None:
    before = {p["metadata"]["name"] for p in prod.pods("threadhost-actors")}

    def restart() -> None:
        prod.cluster.kubectl("-n", NAMESPACE, "rollout", "restart", "deployment/threadhost-actors")
        prod.rollout("threadhost-actors")

    _talk_through(prod, restart, "rolling")
    after = {p["metadata"]["name"] for p in prod.pods("threadhost-actors")}
    assert before.isdisjoint(after), "the rollout replaced every actor pod"


def test_a_deleted_actor_pod_loses_no_turn(prod: Prod) -> None:
    victim = prod.pods("threadhost-actors")[0]["metadata"]["name"]

    def delete() -> None:
        prod.cluster.kubectl("-n", NAMESPACE, "delete", "pod", victim, "--wait=true", timeout=200)
        prod.rollout("threadhost-actors")

    _talk_through(prod, delete, "deleted")
    assert victim not in {p["metadata"]["name"] for p in prod.pods("threadhost-actors")}
