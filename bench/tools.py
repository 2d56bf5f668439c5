"""`./dev bench tools`: what a Dapr service tool adds to a step, against a Python tool
doing the same work (bench/order_service.py serves the support agent's `query_order`).

One stack per shape (Redis profile), with the order service as a Dapr app of its own;
fresh threads take turns of the agent `bench` (the Python tool) and `bench-service` (the
same tool through service invocation), alternately, so both see the same machine. Prints
latency per turn and the sidecar round trips each kind of turn makes.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.measure import percentile, quiet
from bench.run import shape_stack
from threadhost.processes import Process, free_port
from threadhost.runtime import PROJECT_ROOT, dapr_bin_dir
from threadhost.stack import LOOPBACK

TURNS = 200
AGENTS = ("bench", "bench-service")


def start_order_service(folder: Path, bin_dir: Path) -> tuple[list[Process], str]:
    port, http_port, metrics = free_port(), free_port(), free_port()
    app = Process(
        "bench-orders",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.order_service:app",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        folder / "logs",
        cwd=PROJECT_ROOT,
    )
    sidecar = Process(
        "bench-orders-daprd",
        [
            str(bin_dir / "daprd"),
            "--app-id",
            "bench-orders",
            "--mode",
            "standalone",
            "--app-port",
            str(port),
            "--app-channel-address",
            LOOPBACK,
            "--dapr-listen-addresses",
            LOOPBACK,
            "--dapr-http-port",
            str(http_port),
            "--dapr-grpc-port",
            str(free_port()),
            "--dapr-internal-grpc-port",
            str(free_port()),
            "--dapr-internal-grpc-listen-address",
            LOOPBACK,
            "--metrics-port",
            str(metrics),
            "--metrics-listen-address",
            LOOPBACK,
            "--log-level",
            "warn",
        ],
        folder / "logs",
        env={"DAPR_HOST_IP": LOOPBACK},
    )
    app.wait_http_ok(f"http://{LOOPBACK}:{port}/health", 30)
    sidecar.wait_http_ok(f"http://{LOOPBACK}:{http_port}/v1.0/healthz", 60)
    return [sidecar, app], f"http://{LOOPBACK}:{metrics}/metrics"


async def measure(url: str, metrics: list[str]) -> dict[str, tuple[float, float, float]]:
    """Per agent: latency p50 and p99 (ms) and sidecar round trips per turn."""
    latencies: dict[str, list[float]] = {agent: [] for agent in AGENTS}
    trips: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:

        async def turn(agent: str) -> float:
            thread = (await http.post("/v1/threads", json={"agent": agent})).json()["id"]
            started = time.perf_counter()
            answer = await http.post(
                f"/v1/threads/{thread}/messages", json={"content": "Where is order 1001?"}
            )
            elapsed = (time.perf_counter() - started) * 1000
            assert answer.status_code == 200 and "shipped" in answer.text, answer.text
            assert '"is_error":true' not in answer.text, answer.text
            return elapsed

        for _ in range(20):  # warm-up
            for agent in AGENTS:
                await turn(agent)
        for _ in range(TURNS):
            for agent in AGENTS:
                latencies[agent].append(await turn(agent))
        for agent in AGENTS:
            before = await quiet(http, metrics)
            for _ in range(20):
                await turn(agent)
            after = await quiet(http, metrics)
            trips[agent] = sum(after[k] - before[k] for k in ("app→sidecar", "sidecar→app")) / 20
    return {
        agent: (percentile(latencies[agent], 0.5), percentile(latencies[agent], 0.99), trips[agent])
        for agent in AGENTS
    }


def main(argv: list[str]) -> int:
    shapes = argv or ["embedded", "split"]
    folder = Path(tempfile.mkdtemp(prefix="threadhost-bench-tools-"))
    bin_dir = dapr_bin_dir()
    processes: list[Process] = []
    try:
        service, service_metrics = start_order_service(folder, bin_dir)
        processes += service
        for shape in shapes:
            with shape_stack(folder, shape) as (stack, _, _):
                metrics = [f"http://{LOOPBACK}:{a.metrics_port}/metrics" for a in stack.apps]
                print(f"measuring {shape} ...", flush=True)
                found = asyncio.run(measure(stack.api.url, [*metrics, service_metrics]))
            python, service_tool = found["bench"], found["bench-service"]
            print(
                f"\n{shape}: one turn = a model call, one tool call, a model call "
                f"({TURNS} fresh threads each, alternately)"
            )
            for label, (p50, p99, trips) in (
                ("Python tool", python),
                ("service tool", service_tool),
            ):
                print(
                    f"  {label:13} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  sidecar round "
                    f"trips {trips:5.1f}"
                )
            print(
                f"  the service tool adds p50 {service_tool[0] - python[0]:+.1f} ms, "
                f"p99 {service_tool[1] - python[1]:+.1f} ms, "
                f"{service_tool[2] - python[2]:+.1f} round trips per turn"
            )
        return 0
    finally:
        for process in reversed(processes):
            process.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
