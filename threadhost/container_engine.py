"""A Docker engine of the project's own, for `./dev images` and the container tests.

Debian's `dockerd` runs in one of two ways, never touching the machine's own network:
- in a network namespace of its own (`ip netns`), where it makes its bridges, NAT rules
  and published ports as on any host: compose files run there as written;
- with the machine's network (`host_network`), making no bridge and no rule at all
  (`--bridge=none --iptables=false`): for builds, whose pip and apt reach their
  registries as the machine does, and `--network host` containers.
Its images, containers and state live in `.containers/` of the project (git-ignored), so
images built once are found by the next run; one engine runs on that folder at a time (a
file lock). Everything it started stops with it: containers removed, the daemon stopped
by its pid, the namespace deleted.

Nothing is pulled: the images it runs are built here (threadhost/images.py).
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

from threadhost.processes import Process, StartupError
from threadhost.runtime import PROJECT_ROOT

CONTAINERS = PROJECT_ROOT / ".containers"
# Debian's clients: another `docker` earlier on PATH may want plugins Debian lacks.
DOCKER = "/usr/bin/docker"
COMPOSE = "/usr/bin/docker-compose"
CLONE_NEWNET = 0x40000000


def _check_tools() -> None:
    """Debian's engine and tools (`./dev test` and `./dev images` install them as root)."""
    wanted = {
        "/usr/sbin/dockerd": "docker.io",
        DOCKER: "docker.io",
        COMPOSE: "docker-compose",
        "/usr/bin/mmdebstrap": "mmdebstrap",
    }
    missing = sorted({package for path, package in wanted.items() if not Path(path).exists()})
    missing += [tool for tool in ("ip", "nsenter", "iptables") if shutil.which(tool) is None]
    if missing:
        raise StartupError(f"the container engine needs {', '.join(missing)} (Debian packages)")


def enter_network_namespace(name: str) -> None:
    """Moves the calling thread (only it) into the network namespace `name`."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/var/run/netns/{name}") as namespace:
        if libc.setns(namespace.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"cannot enter network namespace {name}")


def mounts_under(folder: Path) -> list[str]:
    """The mount points under `folder`."""
    root = str(folder.resolve()) + "/"
    points = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    return [point for point in points if point.startswith(root)]


def unmount_under(folder: Path, rounds: int = 1) -> None:
    """Unmounts every mount point under `folder`, deepest first; again, up to `rounds`
    times, while some are left."""
    for _ in range(rounds):
        points = mounts_under(folder)
        if not points:
            return
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "--lazy", point], capture_output=True)


class Engine:
    """One dockerd on `root`, started and stopped with the object (a context manager)."""

    def __init__(self, root: Path = CONTAINERS, host_network: bool = False) -> None:
        self.root, self.host_network = root, host_network
        # One namespace per engine folder: two checkouts on one machine stay apart.
        folder = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
        self.namespace = f"threadhost-engine-{folder}"
        self.socket = root / "run" / "docker.sock"
        self._daemon: Process | None = None
        self._lock: IO[str] | None = None
        self._inside: ThreadPoolExecutor | None = None

    @property
    def env(self) -> dict[str, str]:
        """What the docker and docker-compose clients need to reach this engine."""
        return {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_BUILDKIT": "0",  # Debian's engine builds with the classic builder
            "COMPOSE_DOCKER_CLI_BUILD": "0",
        }

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60) -> None:
        _check_tools()
        (self.root / "run").mkdir(parents=True, exist_ok=True)
        self._lock = (self.root / "engine.lock").open("w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # one engine on this folder at a time
        self.socket.unlink(missing_ok=True)
        daemon = [
            "dockerd",
            "--data-root", str(self.root / "docker"),
            "--exec-root", str(self.root / "run" / "exec"),
            "--pidfile", str(self.root / "run" / "dockerd.pid"),
            "--host", f"unix://{self.socket}",
            # A containerd namespace of its own, beside any other engine on the machine.
            "--containerd-namespace", "threadhost",
            "--containerd-plugins-namespace", "threadhost-plugins",
        ]  # fmt: skip
        if self.host_network:
            daemon += ["--bridge=none", "--iptables=false", "--ip6tables=false"]
        else:
            self._namespace_anew()
            # Only the network namespace: `ip netns exec` would also remount /sys,
            # hiding the cgroups dockerd needs.
            daemon = ["nsenter", f"--net=/var/run/netns/{self.namespace}", *daemon]
        self._daemon = Process("dockerd", daemon, self.root / "logs")
        deadline = time.monotonic() + timeout
        while self.docker("info", check=False, capture=True).returncode != 0:
            if not self._daemon.alive() or time.monotonic() > deadline:
                tail = self._daemon.log_tail()
                self.stop()
                raise StartupError(f"dockerd did not start; its log ends:\n{tail}")
            time.sleep(0.2)

    def _namespace_anew(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.namespace], capture_output=True)
        subprocess.run(["ip", "netns", "add", self.namespace], check=True)
        subprocess.run(
            ["ip", "netns", "exec", self.namespace, "ip", "link", "set", "lo", "up"], check=True
        )

    def stop(self) -> None:
        if self._daemon is not None:
            if self._daemon.alive():
                running = self.docker("ps", "-aq", check=False, capture=True).stdout.split()
                if running:
                    self.docker("rm", "-f", *running, check=False, capture=True)
            self._daemon.stop(grace=20)
            self._daemon = None
        if self._inside is not None:
            self._inside.shutdown()
            self._inside = None
        # What dockerd leaves mounted in its folders (the host's network namespace, bound
        # into its exec root).
        unmount_under(self.root)
        if not self.host_network:
            subprocess.run(["ip", "netns", "delete", self.namespace], capture_output=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def mounts(self) -> list[str]:
        """The mount points under the engine's folder."""
        return mounts_under(self.root)

    def docker(
        self, *args: str, check: bool = True, capture: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return self._run([DOCKER, *args], check, capture)

    def compose(
        self, *args: str, project: Path = PROJECT_ROOT, variables: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """docker-compose on the project's file; `variables` are the shell's, which the
        file's `${NAME:-default}` read."""
        argv = [COMPOSE, "--project-directory", str(project), *args]
        return self._run(argv, check=True, capture=False, extra=variables)

    def _run(
        self,
        argv: Sequence[str],
        check: bool,
        capture: bool,
        extra: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv),
            env={**self.env, **(extra or {})},
            check=check,
            text=True,
            capture_output=capture,
            stdin=subprocess.DEVNULL,
            timeout=900,
        )

    def inside(self) -> ThreadPoolExecutor:
        """A thread inside the engine's network namespace: what it connects to is what
        a process on the engine's host would reach (its loopback, published ports)."""
        if self._inside is None:
            self._inside = ThreadPoolExecutor(
                1, initializer=enter_network_namespace, initargs=(self.namespace,)
            )
        return self._inside
