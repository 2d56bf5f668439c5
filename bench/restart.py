"""`./dev bench restart`: the whole stack stopped and started again, with runs at stake.

Two actor hosts and a gateway on one redis-server (the Redis profile, which outlives the
stack as a managed store would). Before each stop, 30 threads have a run waiting for an
approval and 10 have a run in the middle of its first step (a 3-second model call). Then
every threadhost and Dapr process is stopped, gracefully (SIGTERM) or all at once
(SIGKILL), and the stack is started again on the same data. It prints how long the start
took, when the 10 interrupted runs completed by themselves (their watchdog jobs), and
how long resuming each waiting run took, with what went wrong, if anything.

    ./dev bench restart               both kinds
    ./dev bench restart kill          the kinds named (graceful, kill)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.failover import EXPECTED_MESSAGES  # both agents here end so too
from bench.measure import percentile
from bench.run import start_redis
from threadhost.runtime import PROJECT_ROOT, dapr_bin_dir
from threadhost.stack import Stack, StackConfig

KINDS = ("graceful", "kill")
WAITING, IN_FLIGHT = 30, 10
GIVE_UP_SECONDS = 60.0


@dataclass
class Outcome:
    started: float = 0.0
    # Seconds from the start of the restart to each in-flight run's completion.
    in_flight: list[float] = field(default_factory=list)
    # Seconds each waiting run's resume call took, once the stack was up.
    resumes: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _turn(http: httpx.Client, agent: str, mode: str) -> tuple[str, dict]:
    thread = http.post("/v1/threads", json={"agent": agent}).json()["id"]
    answer = http.post(
        f"/v1/threads/{thread}/messages", json={"content": "Cancel order 1002.", "mode": mode}
    )
    answer.raise_for_status()
    return thread, answer.json()["run"]


def _steps_running(stack: Stack) -> int:
    return sum(app.actor_stats()["steps_running"] for app in stack.apps[:-1])


def _check(http: httpx.Client, thread: str, run: dict) -> list[str]:
    kinds = [m["kind"] for m in http.get(f"/v1/threads/{thread}/messages").json()["messages"]]
    events = http.get(f"/v1/threads/{thread}/runs/{run['run_id']}/events").json()["events"]
    problems = []
    if kinds != EXPECTED_MESSAGES:
        problems.append(f"{thread}: messages {kinds}")
    if [e["seq"] for e in events] != list(range(len(events))):
        problems.append(f"{thread}: event seqs {[e['seq'] for e in events]}")
    return problems


def round_(config: StackConfig, kind: str) -> Outcome:
    stack = Stack(config, split=True, actor_hosts=2)
    stack.start()
    http = httpx.Client(base_url=stack.api.url, timeout=30)
    waiting = [_turn(http, "approval", "wait") for _ in range(WAITING)]
    assert all(run["status"] == "requires_action" for _, run in waiting)
    in_flight = [_turn(http, "inflight", "background") for _ in range(IN_FLIGHT)]
    deadline = time.monotonic() + 30
    while _steps_running(stack) < IN_FLIGHT and time.monotonic() < deadline:
        time.sleep(0.05)
    if kind == "kill":
        for process in stack.processes():
            os.kill(process.pid, signal.SIGKILL)
    stack.stop()  # after SIGKILL: reaps them

    outcome = Outcome()
    begun = time.monotonic()
    stack = Stack(config, split=True, actor_hosts=2)
    try:
        stack.start()
        outcome.started = time.monotonic() - begun
        http = httpx.Client(base_url=stack.api.url, timeout=30)
        pending = dict(in_flight)
        while pending and time.monotonic() - begun < GIVE_UP_SECONDS:
            for thread, run in list(pending.items()):
                read = http.get(f"/v1/threads/{thread}/runs/{run['run_id']}")
                if read.status_code == 200 and read.json()["status"] == "completed":
                    outcome.in_flight.append(time.monotonic() - begun)
                    outcome.problems += _check(http, thread, run)
                    del pending[thread]
            time.sleep(0.1)
        outcome.problems += [f"{t}: not completed within {GIVE_UP_SECONDS:.0f} s" for t in pending]
        for thread, run in waiting:
            [action] = run["required_action"]
            asked = time.monotonic()
            resumed = http.post(
                f"/v1/threads/{thread}/runs/{run['run_id']}/resume",
                json={
                    "actions": [
                        {"type": "approval", "call_id": action["call_id"], "approved": True}
                    ]
                },
            )
            outcome.resumes.append(time.monotonic() - asked)
            if resumed.status_code != 200 or resumed.json()["run"]["status"] != "completed":
                outcome.problems.append(f"{thread}: resume answered {resumed.status_code}")
            else:
                outcome.problems += _check(http, thread, run)
    finally:
        stack.stop()
    return outcome


def report(results: dict[str, Outcome]) -> None:
    print(
        f"\nrestart: 2 actor hosts + gateway, Redis; {WAITING} runs waiting for an approval "
        f"and {IN_FLIGHT} in their first (3 s) step when the stack stops; seconds.\n"
    )
    print(
        f"{'stop':9} {'start':>6} {'in-flight done p50':>18} {'max':>6} {'done':>5} "
        f"{'resume p50':>10} {'max':>6} {'resumed':>7} {'problems':>8}"
    )
    for kind, o in results.items():
        flights = o.in_flight or [float("nan")]
        print(
            f"{kind:9} {o.started:6.1f} {percentile(flights, 0.5):18.1f} "
            f"{max(flights):6.1f} {len(o.in_flight):5} "
            f"{percentile(o.resumes, 0.5) if o.resumes else float('nan'):10.2f} "
            f"{max(o.resumes, default=float('nan')):6.2f} "
            f"{len(o.resumes):7} {len(o.problems):8}"
        )
        for problem in o.problems:
            print(f"  {problem}")


def main(argv: list[str]) -> int:
    kinds = argv or list(KINDS)
    if unknown := [k for k in kinds if k not in KINDS]:
        print(f"unknown kind {unknown[0]!r}: choose from {', '.join(KINDS)}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    folder = Path(tempfile.mkdtemp(prefix="threadhost-restart-"))
    redis_server, redis_port = start_redis(folder, "redis-restart")
    agents = json.dumps([str(PROJECT_ROOT / "agents"), str(Path(__file__).parent / "agents")])
    try:
        results = {}
        for kind in kinds:
            config = StackConfig(
                bin_dir=dapr_bin_dir(),
                data_dir=folder / kind,
                profile="redis",
                env={
                    "THREADHOST_REDIS_HOST": f"127.0.0.1:{redis_port}",
                    "THREADHOST_AGENTS_DIRS": agents,
                    "THREADHOST_AUTH_MODE": "none",
                },
                actors_app_id=f"threads-restart-{kind}-{os.getpid()}",
                gateway_app_id=f"gateway-restart-{kind}-{os.getpid()}",
            )
            print(kind, flush=True)
            results[kind] = round_(config, kind)
        report(results)
        return 0
    finally:
        redis_server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
