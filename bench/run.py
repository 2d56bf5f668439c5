"""`./dev bench`: threadhost against the FastAPI + Redis baseline, measured in one run.

Both serve the same scripted turn (one tool call, a zero-latency model) and each keeps its
state in a redis-server of its own, so writes and CPU are counted apart. Prints a table.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis.asyncio as redis

from threadhost.processes import Process, free_port
from threadhost.runtime import PROJECT_ROOT, dapr_bin_dir
from threadhost.stack import Stack, StackConfig

FRESH_TURNS = 150
CONCURRENT_THREADS, TURNS_EACH = 10, 20
GROWTH_POINTS = (10, 50, 100, 200, 500)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ms(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total * 1000 / TICKS


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(round(q * (len(ordered) - 1))), len(ordered) - 1)]


@dataclass
class System:
    name: str
    url: str
    redis_port: int
    pids: list[int]
    create: str | None  # the route that creates a thread, if the system has one
    turn: str
    results: dict[str, object] = field(default_factory=dict)

    async def new_thread(self, http: httpx.AsyncClient, n: int) -> str:
        if self.create is None:
            return f"t{n}-{time.monotonic_ns()}"
        response = await http.post(self.url + self.create, json={"agent": "bench"})
        return response.json()["id"]

    async def say(self, http: httpx.AsyncClient, thread: str, text: str) -> float:
        started = time.perf_counter()
        response = await http.post(self.url + self.turn.format(thread=thread),
                                   json={"content": text})
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.text
        assert "shipped" in json.dumps(response.json())
        return elapsed


class WriteCounter:
    """Counts key writes in a redis-server through keyspace notifications."""

    def __init__(self, port: int) -> None:
        self.client = redis.Redis(port=port)
        self.keys: list[str] = []

    async def start(self) -> None:
        await self.client.config_set("notify-keyspace-events", "KA")
        self.pubsub = self.client.pubsub()
        await self.pubsub.psubscribe("__keyspace@*__:*")
        self.task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        async for message in self.pubsub.listen():
            if message["type"] == "pmessage" and message["data"] not in (b"del", b"expire"):
                self.keys.append(message["channel"].decode().split(":", 1)[1])

    async def input_bytes(self) -> int:
        return int((await self.client.info("stats"))["total_net_input_bytes"])


async def measure(system: System) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        for n in range(20):  # warm-up
            await system.say(http, await system.new_thread(http, n), "warm up")
        fresh = []
        for n in range(FRESH_TURNS):
            thread = await system.new_thread(http, 1000 + n)
            fresh.append(await system.say(http, thread, "Where is order 1001?"))
        system.results["p50"], system.results["p99"] = (percentile(fresh, 0.5),
                                                        percentile(fresh, 0.99))

        threads = [await system.new_thread(http, 5000 + n) for n in range(CONCURRENT_THREADS)]
        cpu_before, started = cpu_ms(system.pids), time.perf_counter()

        async def talk(thread: str) -> None:
            for _ in range(TURNS_EACH):
                await system.say(http, thread, "Where is order 1001?")

        await asyncio.gather(*(talk(t) for t in threads))
        turns = CONCURRENT_THREADS * TURNS_EACH
        system.results["tps"] = turns / (time.perf_counter() - started)
        system.results["cpu"] = (cpu_ms(system.pids) - cpu_before) / turns

        counter = WriteCounter(system.redis_port)
        await counter.start()
        thread, count, growth = await system.new_thread(http, 9999), 0, {}
        for point in GROWTH_POINTS:
            while count + 4 < point:
                await system.say(http, thread, "Where is order 1001?")
                count += 4
            await asyncio.sleep(0.2)  # let notifications of earlier turns arrive
            counter.keys.clear()
            bytes_before = await counter.input_bytes()
            latency = await system.say(http, thread, "Where is order 1001?")
            count += 4
            await asyncio.sleep(0.2)
            growth[point] = (latency, await counter.input_bytes() - bytes_before,
                             len(counter.keys), len(set(counter.keys)))
        system.results["growth"] = growth
        counter.task.cancel()
        await counter.client.aclose()


def start_redis(folder: Path, name: str) -> tuple[Process, int]:
    port = free_port()
    server = Process(name, [shutil.which("redis-server") or "redis-server", "--port", str(port),
                            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                     folder / "logs")
    deadline = time.monotonic() + 10
    while True:
        try:
            if asyncio.run(redis.Redis(port=port).ping()):
                return server, port
        except (OSError, redis.ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def report(th: System, base: System) -> None:
    r, b = th.results, base.results
    print("\nthreadhost (embedded, Redis profile, real daprd) vs baseline (FastAPI + Redis), "
          f"one turn = one tool call, zero-latency scripted model; {os.cpu_count()} cores\n")
    rows = [("latency p50, fresh thread (ms)", r["p50"], b["p50"]),
            ("latency p99, fresh thread (ms)", r["p99"], b["p99"]),
            (f"turns/s, {CONCURRENT_THREADS} concurrent threads", r["tps"], b["tps"]),
            ("CPU ms per turn, all processes", r["cpu"], b["cpu"])]
    for point in GROWTH_POINTS:
        tl, tb, tw, tk = r["growth"][point]
        bl, bb, bw, bk = b["growth"][point]
        rows += [(f"@{point} msgs: latency (ms)", tl, bl),
                 (f"@{point} msgs: bytes written", tb, bb),
                 (f"@{point} msgs: key writes (distinct keys)", f"{tw} ({tk})", f"{bw} ({bk})")]
    print(f"{'':46} {'threadhost':>14} {'baseline':>14} {'ratio':>8}")
    for label, t, bv in rows:
        ratio = f"{t / bv:8.2f}" if isinstance(t, float | int) and bv else ""
        fmt = (lambda v: f"{v:14.1f}") if isinstance(t, float | int) else (lambda v: f"{v:>14}")
        print(f"{label:46} {fmt(t)} {fmt(bv)} {ratio}")
    print(f"\nadded latency per turn: p50 {r['p50'] - b['p50']:+.1f} ms, "
          f"p99 {r['p99'] - b['p99']:+.1f} ms (targets: +5 ms, +15 ms)")


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="threadhost-bench-"))
    processes: list[Process] = []
    stack = None
    try:
        th_redis, th_port = start_redis(folder, "redis-threadhost")
        base_redis, base_port = start_redis(folder, "redis-baseline")
        processes += [th_redis, base_redis]
        agents = json.dumps([str(PROJECT_ROOT / "agents"), str(Path(__file__).parent / "agents")])
        stack = Stack(StackConfig(bin_dir=dapr_bin_dir(), data_dir=folder / "threadhost",
                                  profile="redis",
                                  env={"THREADHOST_REDIS_HOST": f"127.0.0.1:{th_port}",
                                       "THREADHOST_AGENTS_DIRS": agents}))
        stack.start()
        base_port_http = free_port()
        baseline = Process("baseline", [sys.executable, "-m", "uvicorn", "bench.baseline:app",
                                        "--host", "127.0.0.1", "--port", str(base_port_http),
                                        "--log-level", "warning"], folder / "logs",
                           env={"BASELINE_REDIS_URL": f"redis://127.0.0.1:{base_port}/0"},
                           cwd=PROJECT_ROOT)
        processes.append(baseline)
        baseline.wait_http_ok(f"http://127.0.0.1:{base_port_http}/health", 30)
        th = System("threadhost", stack.api.url, th_port,
                    [p.pid for p in stack.processes()] + [th_redis.pid], "/v1/threads",
                    "/v1/threads/{thread}/messages")
        base = System("baseline", f"http://127.0.0.1:{base_port_http}", base_port,
                      [baseline.pid, base_redis.pid], None, "/threads/{thread}/messages")
        for system in (base, th):
            print(f"measuring {system.name} ...", flush=True)
            asyncio.run(measure(system))
        report(th, base)
        return 0
    finally:
        if stack is not None:
            stack.stop()
        for process in reversed(processes):
            process.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
