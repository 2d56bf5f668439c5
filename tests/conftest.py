"""Fixtures that run the real Dapr runtime: placement, scheduler, daprd, and real stores.

Every process is started on free loopback ports, waited for on its health endpoint, and
stopped by pid when the test ends, pass or fail.
"""

from __future__ import annotations

import os

# The tests start processes by fork and exec while gRPC servers run in this process (the
# rehearsals' OTLP collector, the SDK): gRPC's fork handlers then made a child abort
# between the two now and then (SIGABRT, "epoll_wait error: Bad file descriptor"). A child
# here only execs: it needs none of them. Read by gRPC when it loads, so before any import.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import ipaddress
import json
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from actors.dapr_host.status_batches import BATCH_SECONDS
from threadhost.processes import Process, free_port
from threadhost.runtime import PROJECT_ROOT, dapr_bin_dir
from threadhost.stack import App, ControlPlane, Stack, StackConfig

# Actors that must deactivate within a test: seconds, not the hour production uses.
FAST_IDLE = {"THREADHOST_ACTOR_IDLE_TIMEOUT_SECONDS": "2"}
# The test agents (tests/agents) and a watchdog that notices a stalled run quickly.
TEST_AGENTS = {
    "THREADHOST_AGENTS_DIRS": json.dumps(
        [str(PROJECT_ROOT / "agents"), str(Path(__file__).parent / "agents")]
    ),
    "THREADHOST_RUN_WATCHDOG_SECONDS": "2",
    # Explicit, so a developer's own environment does not change the tests.
    "THREADHOST_AUTH_MODE": "none",
}


# Networks that exist only inside a network namespace a test made on this machine (the
# test cluster's, tests/kube/cluster.py): reaching them leaves no machine either.
PRIVATE_TO_THIS_MACHINE: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    """Fails any connection the test process tries to make beyond this machine."""
    real_connect = socket.socket.connect

    def allowed(host: str) -> bool:
        address = ipaddress.ip_address(host)
        return address.is_loopback or any(address in net for net in PRIVATE_TO_THIS_MACHINE)

    def guarded(sock: socket.socket, address: object) -> object:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0] if isinstance(address, tuple) else address
            if host != "localhost" and not allowed(host):
                raise AssertionError(f"test tried to reach {host}: only loopback is allowed")
        return real_connect(sock, address)

    socket.socket.connect = guarded  # type: ignore[method-assign]
    yield
    socket.socket.connect = real_connect  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def dapr_bin() -> Path:
    return dapr_bin_dir()


def make_stack_config(
    dapr_bin: Path,
    folder: Path,
    suffix: str,
    profile: str = "sqlite",
    env: dict[str, str] | None = None,
) -> StackConfig:
    # App-ids of the test's own: another stack on the machine (a developer's
    # `threadhost up`) must not answer this one's service invocations.
    return StackConfig(
        bin_dir=dapr_bin,
        data_dir=folder / "data",
        profile=profile,
        env={**TEST_AGENTS, **(env or {})},
        startup_timeout=60,
        actors_app_id=f"threads-{suffix}",
        gateway_app_id=f"gateway-{suffix}",
    )


@pytest.fixture
def stack_config(dapr_bin: Path, tmp_path: Path) -> Callable[..., StackConfig]:
    suffix = uuid.uuid4().hex[:10]

    def make(profile: str = "sqlite", env: dict[str, str] | None = None) -> StackConfig:
        return make_stack_config(dapr_bin, tmp_path, suffix, profile, env)

    return make


@pytest.fixture(scope="module")
def split_stack(dapr_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The shape people deploy (a gateway and an actor host apart, each with its
    sidecar), shared by a module's tests that leave nothing behind that another reads."""
    config = make_stack_config(dapr_bin, tmp_path_factory.mktemp("split"), uuid.uuid4().hex[:10])
    with Stack(config, split=True) as running:
        yield running


@pytest.fixture
def stacks() -> Iterator[list[Stack | App | ControlPlane]]:
    """Whatever a test appends here is stopped at its end, last started first."""
    started: list[Stack | App | ControlPlane] = []
    yield started
    for item in reversed(started):
        item.stop()


def start_apps(config: StackConfig, stacks: list, *roles: str) -> list[App]:
    """A control plane and one app per role (actors or gateway), each with its sidecar,
    all stopped at the end of the test."""
    control_plane = ControlPlane(config)
    stacks.append(control_plane)
    control_plane.start()
    apps = [
        App(config, control_plane, f"{role}-{n}", role=role)
        for n, role in enumerate(roles, start=1)
    ]
    for app in apps:
        stacks.append(app)
        app.start()
    return apps


@pytest.fixture
def stack(stack_config: Callable[..., StackConfig], stacks: list) -> Stack:
    running = Stack(stack_config())
    stacks.append(running)
    running.start()
    return running


@contextmanager
def running_redis(folder: Path) -> Iterator[str]:
    """A real redis-server on a free loopback port; yields host:port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run .ci/run or apt-get install redis-server")
    port = free_port()
    server = Process(
        "redis",
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        folder / "logs",
    )
    try:
        _wait_redis(server, port)
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[str]:
    with running_redis(tmp_path) as address:
        yield address


def postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None
    )
    if found is None:
        pytest.fail("PostgreSQL is not installed: run .ci/run or apt-get install postgresql")
    return found


@contextmanager
def running_postgres() -> Iterator[str]:
    """A real PostgreSQL on a free loopback port, in a throwaway cluster; yields a
    connection string. As root it runs as the `postgres` user, as PostgreSQL insists."""
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="threadhost-pg-"))
    data, port = folder / "data", free_port()
    if as_user:
        shutil.chown(folder, "postgres")
    subprocess.run(
        [
            *as_user,
            postgres_bin("initdb"),
            "-D",
            str(data),
            "-U",
            "threadhost",
            "--auth=trust",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    server = Process(
        "postgres",
        [
            *as_user,
            postgres_bin("postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(folder),
            "-c",
            "fsync=off",
        ],
        folder / "logs",
    )
    try:
        url = f"host=127.0.0.1 port={port} user=threadhost dbname=postgres sslmode=disable"
        deadline = time.monotonic() + 30
        while (
            subprocess.run(
                [postgres_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
                timeout=10,
            ).returncode
            != 0
        ):
            assert server.alive(), server.log_tail()
            assert time.monotonic() < deadline, "PostgreSQL did not become ready"
            time.sleep(0.1)
        yield url
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_server() -> Iterator[str]:
    with running_postgres() as url:
        yield url


def _wait_redis(server: Process, port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert server.alive(), server.log_tail()
        ping = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if ping.stdout.strip() == "PONG":
            return
        time.sleep(0.05)
    pytest.fail(f"redis-server did not answer on port {port}")


def stored_rows(config: StackConfig) -> dict[str, str]:
    """Every key and value in the SQLite state store, read straight from its file, once
    it is at rest: the announcements a commit wrote are removed once sent, just after,
    and threads' state changes reach their owners' lists within half a second (gathered
    per host, actors/dapr_host/status_batches.py): unchanged for longer than that."""
    path = Path(config.process_env()["THREADHOST_SQLITE_PATH"])
    if not path.exists():
        return {}
    deadline = time.monotonic() + 20
    before: dict[str, str] | None = None
    while True:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = dict(db.execute("select key, value from state").fetchall())
        settled = rows == before and not any("||announce." in key for key in rows)
        if settled or time.monotonic() > deadline:
            return rows
        before = rows
        time.sleep(BATCH_SECONDS + 0.25)


class Api:
    """A small client for the public API, with the assertions every test wants."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def create_thread(self, agent: str | None = None, **metadata: str) -> str:
        response = self.http.post("/v1/threads", json={"metadata": metadata, "agent": agent})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def say(self, thread_id: str, text: str) -> dict:
        response = self.http.post(f"/v1/threads/{thread_id}/messages", json={"content": text})
        assert response.status_code == 200, response.text
        return response.json()

    def messages(self, thread_id: str) -> list[dict]:
        response = self.http.get(f"/v1/threads/{thread_id}/messages")
        assert response.status_code == 200, response.text
        return response.json()["messages"]

    def history(self, thread_id: str) -> list[tuple[str, str]]:
        return [(m["role"], m["content"]) for m in self.messages(thread_id)]

    def run(self, thread_id: str, run_id: str) -> dict:
        response = self.http.get(f"/v1/threads/{thread_id}/runs/{run_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def events(self, thread_id: str, run_id: str) -> list[dict]:
        response = self.http.get(f"/v1/threads/{thread_id}/runs/{run_id}/events")
        assert response.status_code == 200, response.text
        return response.json()["events"]


def assertion_signing_key() -> str:
    """A new EC P-256 key in PEM, as THREADHOST_ASSERTION_SIGNING_KEY (or the secret
    store's assertion-signing-key) takes it."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Polls `condition` until it is truthy; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def conversation(*texts: str) -> list[tuple[str, str]]:
    """The history the scripted model produces for these user messages."""
    return [pair for text in texts for pair in (("user", text), ("assistant", f"You said: {text}"))]
