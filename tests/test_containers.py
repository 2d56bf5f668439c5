"""The images and docker-compose.yml on a real container engine (Debian's dockerd, the
project's own: threadhost/container_engine.py), with images built here from the pinned
runtime and Debian packages (`./dev images`, threadhost/images.py).

- The app's image runs as the pods run it: uid 10001, a read-only root filesystem, no
  capability, no privilege gained, a memory limit; its bare command says what it needs.
- The embedded image (Dockerfile.embedded) serves a conversation in one `docker run`.
- The compose file, as written, in each profile: a conversation through the published
  gateway; with two actor hosts, one killed with `docker kill` and its threads
  answering from the other; `down -v` leaving nothing behind.
- A stopped engine leaves no process, mount or network namespace.

As root only (the engine and its network namespace need it), as CI runs.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Api, wait_for
from threadhost.container_engine import Engine
from threadhost.images import REDIS, app_image, build_all, embedded_image
from threadhost.processes import free_port

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the container engine needs root"),
    # The first build on a fresh machine takes minutes (the closing notes give them).
    pytest.mark.timeout(900),
]

POD = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true"]


@pytest.fixture(scope="module")
def built() -> dict[str, float]:
    """Every image, built or found in the engine's cache (seconds per image built)."""
    with Engine(host_network=True) as engine:
        return build_all(engine, lambda line: print(f"images: {line}"))


def test_the_image_runs_as_the_pods_run_it(built) -> None:
    with Engine(host_network=True) as engine:
        user = engine.docker(
            "image", "inspect", "--format", "{{.Config.User}}", app_image(), capture=True
        )
        assert user.stdout.strip() == "10001"
        # The pod's constraints: the app still imports, starts and reads its agents.
        seen = engine.docker(
            "run", "--rm", "--network", "host", *POD, "--memory", "512m", app_image(),
            "python", "-c",
            "import os, threadhost.app, pathlib; "
            "print(os.getuid(), os.getgid(), len(list(pathlib.Path('/app/agents').glob('*'))))",
            capture=True,
        )  # fmt: skip
        uid, _, agents = seen.stdout.split()
        assert uid == "10001" and int(agents) > 0
        # Nothing of the image is writable by its user: a write outside the volumes fails
        # even without --read-only.
        probe = engine.docker(
            "run", "--rm", "--network", "host", app_image(),
            "sh", "-c", "for d in / /app /app/agents /opt/threadhost; do "
            "touch $d/.probe 2>/dev/null && echo writable: $d; done; true",
            capture=True,
        )  # fmt: skip
        assert probe.stdout.strip() == ""
        # Its own command, with nothing set: a message saying what it needs, not a trace.
        bare = engine.docker(
            "run", "--rm", "--network", "host", *POD, app_image(), check=False, capture=True
        )  # fmt: skip
        assert bare.returncode == 2
        assert bare.stderr.startswith("threadhost: cannot start: THREADHOST_AUTH_MODE=jwt")
        assert "THREADHOST_ROLE" in bare.stderr and "Traceback" not in bare.stderr


def test_the_embedded_image_serves_a_conversation_in_one_command(built) -> None:
    """Dockerfile.embedded, run with the pods' constraints and a volume for /data: the
    whole service in one container, a conversation, and a clean stop on SIGTERM."""
    port, name = free_port(), "threadhost-embedded-test"
    with Engine(host_network=True) as engine:
        engine.docker(
            "run", "--detach", "--name", name, "--network", "host", *POD, "--memory", "1g",
            "--volume", f"{name}:/data", embedded_image(), "--port", str(port),
            capture=True,
        )  # fmt: skip
        try:
            api = _answering(f"http://127.0.0.1:{port}", "the embedded service")
            thread = api.create_thread(agent="support")
            assert api.say(thread, "Where is my order 1001?")["run"]["status"] == "completed"
            engine.docker("stop", "--time", "30", name, capture=True)
            code = engine.docker("inspect", "--format", "{{.State.ExitCode}}", name, capture=True)
            logs = engine.docker("logs", name, capture=True)
            assert code.stdout.strip() == "0", logs.stdout + logs.stderr
            assert "threadhost: stopped" in logs.stdout
        finally:
            engine.docker("rm", "--force", "--volumes", name, check=False, capture=True)
            engine.docker("volume", "rm", name, check=False, capture=True)


@pytest.mark.parametrize("host_network", [True, False], ids=["host network", "own namespace"])
def test_the_engine_leaves_nothing_behind(built, host_network: bool) -> None:
    """Stopped, the project's engine leaves no process, mount or network namespace."""
    engine = Engine(host_network=host_network)
    with engine:
        pid = int((engine.root / "run" / "dockerd.pid").read_text())
        assert engine.docker("info", capture=True).returncode == 0
    assert not Path(f"/proc/{pid}").exists()
    assert engine.mounts() == []
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    assert engine.namespace not in namespaces.stdout


@pytest.fixture(scope="module")
def engine(built) -> Iterator[Engine]:
    with Engine() as engine:
        yield engine


@pytest.mark.parametrize("profile", ["default", "two-hosts"])
def test_compose_runs_as_written_and_leaves_nothing_behind(engine: Engine, profile: str) -> None:
    """Each profile: a conversation through the published gateway; with two actor hosts,
    one killed (`docker kill`) and its threads answering from the other."""
    compose = ["--project-name", "threadhost", "--profile", profile]
    variables = {"THREADHOST_REDIS_IMAGE": REDIS}
    began = time.monotonic()
    engine.compose(*compose, "up", "--detach", "--no-build", variables=variables)
    try:
        hosts = HOSTS if profile == "two-hosts" else HOSTS[:1]
        engine.inside().submit(_conversation, engine, hosts, began).result(timeout=300)
    finally:
        engine.compose(*compose, "down", "--volumes", "--remove-orphans", variables=variables)
    assert engine.docker("ps", "-aq", capture=True).stdout.split() == []
    assert engine.docker("volume", "ls", "-q", capture=True).stdout.split() == []
    networks = engine.docker("network", "ls", "--format", "{{.Name}}", capture=True)
    assert sorted(networks.stdout.split()) == ["bridge", "host", "none"]


def _conversation(engine: Engine, hosts: tuple[str, ...], began: float) -> None:
    """Inside the engine's network namespace, where the gateway's port is published."""
    api = _answering("http://127.0.0.1:8000", "the gateway published on 127.0.0.1:8000")
    threads = [api.create_thread(agent="support") for _ in range(4)]
    for thread in threads:
        assert api.say(thread, "Where is my order 1001?")["run"]["status"] == "completed"
    took = time.monotonic() - began
    print(f"{len(hosts)} actor host(s): up and a first turn on 4 threads in {took:.1f} s")
    if len(hosts) == 1:
        assert _served(engine, hosts[0], threads) == set(threads)
        return
    served = {host: _served(engine, host, threads) for host in hosts}
    victim = max(hosts, key=lambda host: len(served[host]))
    other = next(host for host in hosts if host != victim)
    killed = time.monotonic()
    engine.docker("kill", f"threadhost_{victim}_1", capture=True)
    for thread in threads:  # each answers again, with its history
        reply = api.say(thread, "And order 1002?")
        assert reply["run"]["status"] == "completed"
        assert [role for role, _ in api.history(thread)].count("user") == 2
    print(f"every thread answered again {time.monotonic() - killed:.1f} s after the kill")
    # The killed host's threads were served by the other one.
    assert served[victim] and served[victim] <= _served(engine, other, threads)


def _answering(url: str, what: str) -> Api:
    """A client of the API at `url`, once its health answers (within 120 s)."""
    api = Api(url)

    def ready() -> bool:
        try:
            return api.http.get("/health").status_code == 200
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    wait_for(ready, 120, what)
    return api


HOSTS = ("threads", "threads-2")


def _served(engine: Engine, host: str, threads: list[str]) -> set[str]:
    """The threads whose steps the actor host's log names."""
    logs = engine.docker("logs", f"threadhost_{host}_1", capture=True)
    return {thread for thread in threads if thread in logs.stdout + logs.stderr}
