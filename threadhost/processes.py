"""Child processes the launcher and the tests start: logged to files, stopped by pid."""

from __future__ import annotations

import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx


class StartupError(RuntimeError):
    pass


def _die_with_parent() -> None:
    """Runs in the child before exec: if whoever started it dies, even by SIGKILL, the
    kernel sends it SIGTERM, so no daprd outlives its launcher."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def reserve_port(port: int) -> int:
    """Marks a port chosen elsewhere (say, by the user) so free_port() never returns it."""
    _handed_out.add(port)
    return port


def free_port() -> int:
    """A loopback port that is free now and that this process has not handed out before.

    It is taken below the kernel's ephemeral range, where outgoing connections (and the
    ports other tools get from bind(0)) never land between now and the moment it is bound.
    """
    low, _ = _ephemeral_range()
    first = 10_000 if low > 12_000 else 1_024
    for _ in range(1000):
        port = random.randrange(first, low)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise StartupError("no free loopback port found")


class Process:
    """One child process with its own session, so a terminal's Ctrl-C reaches only us."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    @property
    def pid(self) -> int:
        return self._popen.pid

    def alive(self) -> bool:
        return self._popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_http_ok(
        self, url: str, timeout: float, accept: Callable[[httpx.Response], bool] = lambda _: True
    ) -> None:
        """Polls `url` until it answers 2xx and `accept` agrees; fails early if the
        process exits."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            if not self.alive():
                raise StartupError(
                    f"{self.name} exited with code {self._popen.returncode}; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            try:
                response = httpx.get(url, timeout=2)
                if response.is_success and accept(response):
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise StartupError(
                    f"{self.name} not healthy at {url} after {timeout:.0f} s; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.alive():
            self._popen.send_signal(signal.SIGKILL)
        self._popen.wait()

    def terminate(self) -> None:
        """SIGTERM, once: the process may take its time to finish what it is doing."""
        if self.alive():
            self._popen.send_signal(signal.SIGTERM)

    def reap(self, grace: float) -> None:
        """Waits for the process to exit; SIGKILL if it has not within `grace` seconds."""
        try:
            self._popen.wait(timeout=max(grace, 0))
        except subprocess.TimeoutExpired:
            self._popen.send_signal(signal.SIGKILL)
        self._popen.wait()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
        self.terminate()
        self.reap(grace)
