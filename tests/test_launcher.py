"""`threadhost up`: one command brings the stack up, and it leaves nothing behind."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Api, conversation
from threadhost.processes import free_port


def _read_until(proc: subprocess.Popen, pattern: str) -> re.Match:
    for line in proc.stdout:
        if match := re.search(pattern, line):
            return match
    raise AssertionError(f"launcher exited ({proc.wait()}) before printing {pattern!r}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone in all but name; /proc tells the two apart.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _launch(data_dir: Path, port: int, *args: str) -> tuple[subprocess.Popen, list[int]]:
    """Starts `threadhost up`; returns it once healthy, with the pids it reports."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "threadhost",
            "up",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _read_until(proc, r"healthy in [\d.]+ s; API at http://127\.0\.0\.1:" + str(port))
        listed = _read_until(proc, r"processes: (.*)").group(1)
    except BaseException:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        raise
    return proc, [int(pid) for pid in re.findall(r"=(\d+)", listed)]


@pytest.mark.parametrize("mode", [[], ["--split"]], ids=["embedded", "split"])
def test_up_serves_a_conversation_and_sigterm_stops_every_process(dapr_bin, tmp_path, mode) -> None:
    port = free_port()
    proc, pids = _launch(tmp_path / "data", port, *mode)
    try:
        assert len(pids) == (6 if mode else 4)
        assert all(_alive(pid) for pid in pids)
        api = Api(f"http://127.0.0.1:{port}")
        thread = api.create_thread()
        api.say(thread, "hello")
        assert api.history(thread) == conversation("hello")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0
    assert _wait_gone(pids, 0) == []


def test_children_stop_even_when_the_launcher_is_killed(dapr_bin, tmp_path) -> None:
    proc, pids = _launch(tmp_path / "data", free_port())
    proc.kill()
    proc.wait()
    assert _wait_gone(pids, 30) == []
