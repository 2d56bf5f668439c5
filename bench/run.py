"""`./dev bench`: threadhost in each shape it is deployed in, against what a user would
pick instead, measured in the same run: the agent-SDK service (FastAPI + Redis + the
OpenAI Agents SDK, bench/agent_sdk_service.py), and beside it the project's own engine in a
bare FastAPI + Redis service (bench/baseline.py).

Shapes: embedded (one app, one sidecar), split (a gateway and an actor host, each with its
sidecar, as on Kubernetes) and split with two actor hosts behind one gateway. Every system
serves the same scripted turn (one tool call, a zero-latency model) and keeps its state in
a redis-server of its own, so writes and CPU are counted apart. Prints one table.

    ./dev bench                 every shape
    ./dev bench split           only the shapes named (embedded, split, split2)
    ./dev bench failover        killing actor hosts instead (bench/failover.py)
    ./dev bench restart         stopping and starting the whole stack (bench/restart.py)
    ./dev bench tools           a Dapr service tool against a Python tool (bench/tools.py)
    ./dev bench doors           the OpenAI door's first token against /v1/threads' (bench/doors.py)
    ./dev bench context         a 5,000-message thread's requests and writes (bench/context.py)
    ./dev bench forks           a fork's time and bytes by the thread's length (bench/forks.py)
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis.asyncio as redis

from bench.measure import CONCURRENCY, GROWTH_POINTS, LOAD_REPEATS, System, measure
from threadhost.processes import Process, free_port
from threadhost.runtime import PROJECT_ROOT, dapr_bin_dir
from threadhost.stack import Stack, StackConfig

SHAPES = {"embedded": (False, 1), "split": (True, 1), "split2": (True, 2)}


def start_redis(folder: Path, name: str) -> tuple[Process, int]:
    port = free_port()
    server = Process(
        name,
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        folder / "logs",
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            if asyncio.run(redis.Redis(port=port).ping()):
                return server, port
        except (OSError, redis.ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _cell(value: object) -> str:
    return f"{value:11.1f}" if isinstance(value, float | int) else f"{value!s:>11}"


def report(systems: list[System], base: System, sdk: System) -> None:
    """The table: each shape beside the agent-SDK service a user would pick instead
    (ratios are threadhost / agent-sdk), and the project's engine in a bare service."""
    b, a = base.results, sdk.results
    print(
        f"\nthreadhost (Redis profile, real daprd) vs agent-sdk (FastAPI + Redis + the OpenAI "
        f"Agents SDK) and baseline (FastAPI + Redis + this project's engine), one turn = one "
        f"tool call, zero-latency scripted model; {os.cpu_count()} cores. Ratios are "
        f"threadhost / agent-sdk.\n"
    )
    rows: list[tuple[str, str]] = [
        ("latency p50, fresh thread (ms)", "p50"),
        ("latency p99, fresh thread (ms)", "p99"),
    ]
    for clients in CONCURRENCY:
        rows += [
            (f"turns/s, {clients} concurrent clients ({LOAD_REPEATS}-run median)", f"tps{clients}"),
            (f"CPU ms per turn at {clients} clients, all processes", f"cpu{clients}"),
        ]
    head = f"{'':50} {'baseline':>11} {'agent-sdk':>11}" + "".join(
        f" {s.name:>11} {'ratio':>6}" for s in systems
    )
    print(head)
    for label, key in rows:
        line = f"{label:50} {_cell(b[key])} {_cell(a[key])}"
        for s in systems:
            line += f" {_cell(s.results[key])} {s.results[key] / a[key]:6.2f}"
        print(line)
    for n, what in ((0, "idle thread after 2 turns: Redis bytes"), (1, "... and keys")):
        line = f"{what:50} {_cell(b['rest'][n])} {_cell(a['rest'][n])}"
        for s in systems:
            mine = s.results["rest"][n]
            line += f" {_cell(mine)} {mine / a['rest'][n]:6.2f}"
        print(line)
    for point in GROWTH_POINTS:
        for n, what in (
            (0, "latency (ms)"),
            (1, "bytes sent to Redis"),
            (2, "key writes (distinct keys)"),
        ):

            def value(r: dict, n: int = n, point: int = point) -> object:
                grown = r["growth"][point]
                return f"{grown[2]} ({grown[3]})" if n == 2 else grown[n]

            line = f"{'@' + str(point) + ' msgs: ' + what:50} {_cell(value(b))}"
            line += f" {_cell(value(a))}"
            for s in systems:
                mine, theirs = value(s.results), value(a)
                ratio = (
                    f"{mine / theirs:6.2f}" if isinstance(mine, float | int) and theirs else " " * 6
                )
                line += f" {_cell(mine)} {ratio}"
            print(line)
    print("\nper simple turn (sequential, fresh thread):")
    for s in systems:
        trips = s.results["trips"]
        stream = s.results["stream"]
        total = trips["app→sidecar"] + trips["sidecar→app"]
        print(
            f"  {s.name:9} sidecar round trips {total:5.1f} (app→sidecar "
            f"{trips['app→sidecar']:.1f}, sidecar→app {trips['sidecar→app']:.1f}); "
            f"scheduler calls {trips['sidecar→scheduler']:.1f}"
        )
        print(
            f"  {'':9} streamed: first SSE event p50 {stream[0]:.1f} ms, p99 {stream[1]:.1f} "
            f"ms; gap between events p99 {stream[2]:.1f} ms; whole turn p50 {stream[3]:.1f} ms"
        )
    print(
        "\nthe floor: a read of a thread through the same hops (no step, no write), "
        "against the baseline's turn:"
    )
    for s in systems:
        latency, cpu, used = s.results["floor"]
        print(
            f"  {s.name:9} p50 {latency:.1f} ms ({latency - b['p50']:+.1f}); CPU {cpu:.1f} ms "
            f"at {min(CONCURRENCY)} clients ({cpu / b[f'cpu{min(CONCURRENCY)}']:.1f}x): "
            + ", ".join(
                f"{name} {ms:.1f}" for name, ms in sorted(used.items(), key=lambda item: -item[1])
            )
        )
    print(f"\nCPU ms per turn at {min(CONCURRENCY)} clients, by process:")
    for s in [base, sdk, *systems]:
        used = s.results[f"cpu{min(CONCURRENCY)} by process"]
        print(
            f"  {s.name:9} "
            + ", ".join(
                f"{name} {ms:.1f}" for name, ms in sorted(used.items(), key=lambda item: -item[1])
            )
        )
    print(
        "\nagainst agent-sdk (issue 31's targets: embedded level on every row; split p50 "
        "within +3 ms, CPU at most 1.5x, turns/s at least 0.9x):"
    )
    for s in systems:
        r = s.results
        print(
            f"  {s.name:9} p50 {r['p50'] - a['p50']:+6.1f} ms, p99 {r['p99'] - a['p99']:+6.1f} ms; "
            f"CPU {r['cpu10'] / a['cpu10']:.2f}x / {r['cpu50'] / a['cpu50']:.2f}x; turns/s "
            f"{r['tps10'] / a['tps10']:.2f}x / {r['tps50'] / a['tps50']:.2f}x (10 / 50 clients)"
        )


def main(argv: list[str]) -> int:
    if argv[:1] == ["failover"]:
        from bench import failover

        return failover.main(argv[1:])
    if argv[:1] == ["restart"]:
        from bench import restart

        return restart.main(argv[1:])
    if argv[:1] == ["tools"]:
        from bench import tools

        return tools.main(argv[1:])
    if argv[:1] == ["context"]:
        from bench import context

        return context.main(argv[1:])
    if argv[:1] == ["forks"]:
        from bench import forks

        return forks.main(argv[1:])
    if argv[:1] == ["doors"]:
        from bench import doors

        return doors.main(argv[1:])
    if argv[:1] == ["owners"]:
        from bench import owners

        return owners.main(argv[1:])
    if argv[:1] == ["herd"]:
        from bench import herd

        return herd.main(argv[1:])
    shapes = argv or list(SHAPES)
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        print(f"unknown shape {unknown[0]!r}: choose from {', '.join(SHAPES)}", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="threadhost-bench-"))
    processes: list[Process] = []
    try:
        base, started = start_baseline(folder, "baseline", "bench.baseline:app")
        processes += started
        print("measuring baseline (the project's engine in FastAPI + Redis) ...", flush=True)
        asyncio.run(measure(base))
        sdk, started = start_baseline(folder, "agent-sdk", "bench.agent_sdk_service:app")
        processes += started
        print("measuring agent-sdk (FastAPI + Redis + the OpenAI Agents SDK) ...", flush=True)
        asyncio.run(measure(sdk))
        systems = [measure_shape(folder, shape) for shape in shapes]
        report(systems, base, sdk)
        return 0
    finally:
        for process in reversed(processes):
            process.stop()
        shutil.rmtree(folder, ignore_errors=True)


def start_baseline(folder: Path, name: str, app: str) -> tuple[System, list[Process]]:
    """A baseline service (one uvicorn worker) on a redis-server of its own."""
    redis_server, redis_port = start_redis(folder, f"redis-{name}")
    port = free_port()
    service = Process(
        name,
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        folder / "logs",
        env={"BASELINE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"},
        cwd=PROJECT_ROOT,
    )
    service.wait_http_ok(f"http://127.0.0.1:{port}/health", 30)
    system = System(
        name,
        f"http://127.0.0.1:{port}",
        redis_port,
        {"app": service.pid, "redis": redis_server.pid},
        None,
        "/threads/{thread}/messages",
    )
    return system, [redis_server, service]


@contextmanager
def shape_stack(folder: Path, shape: str) -> Iterator[tuple[Stack, Process, int]]:
    """A stack of the shape on a redis-server of its own (the Redis profile), with the
    project's and the bench's agents; stopped after. Yields the stack, the redis-server
    and its port."""
    split, hosts = SHAPES[shape]
    redis_server, port = start_redis(folder, f"redis-{shape}")
    agents = json.dumps([str(PROJECT_ROOT / "agents"), str(Path(__file__).parent / "agents")])
    stack = Stack(
        StackConfig(
            bin_dir=dapr_bin_dir(),
            data_dir=folder / shape,
            profile="redis",
            env={"THREADHOST_REDIS_HOST": f"127.0.0.1:{port}", "THREADHOST_AGENTS_DIRS": agents},
            actors_app_id=f"threads-{shape}",
            gateway_app_id=f"gateway-{shape}",
        ),
        split=split,
        actor_hosts=hosts,
    )
    try:
        stack.start()
        yield stack, redis_server, port
    finally:
        stack.stop()
        redis_server.stop()


def measure_shape(folder: Path, shape: str) -> System:
    """One shape on a stack and a redis-server of its own, stopped when measured."""
    with shape_stack(folder, shape) as (stack, th_redis, th_port):
        system = System(
            shape,
            stack.api.url,
            th_port,
            {**{p.name: p.pid for p in stack.processes()}, "redis": th_redis.pid},
            "/v1/threads",
            "/v1/threads/{thread}/messages",
            [f"http://127.0.0.1:{a.metrics_port}/metrics" for a in stack.apps],
            streams=True,
            floor="/v1/threads/{thread}",
        )
        print(f"measuring {shape} ...", flush=True)
        asyncio.run(measure(system))
        return system


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
