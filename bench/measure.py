"""What `./dev bench` measures on one system: latency, throughput, CPU, store writes,
sidecar round trips and streaming, each the same way for threadhost and the baseline."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis.asyncio as redis

from threadhost.client import EventStreamParser
from threadhost.common.settings import Settings

FRESH_TURNS = 150
CONCURRENCY = {10: 20, 50: 6}  # concurrent threads -> turns each
# Each load is run this many times on fresh threads; the median run is reported (a single
# run of a couple of seconds moved by 10-20% on a 2-core machine).
LOAD_REPEATS = 3
GROWTH_POINTS = (10, 200, 500)
ROUND_TRIP_TURNS = 20
STREAMED_TURNS = 40
FLOOR_READS = 20  # per client, at CONCURRENCY's smallest number of clients
TICKS = os.sysconf("SC_CLK_TCK")
WATCHDOG_SECONDS = Settings.model_fields["run_watchdog_seconds"].default
QUESTION = "Where is order 1001?"


def cpu_ms(processes: dict[str, int]) -> dict[str, float]:
    """CPU time each process (name: pid) has used so far."""
    used = {}
    for name, pid in processes.items():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used[name] = (int(fields[11]) + int(fields[12])) * 1000 / TICKS  # utime + stime
    return used


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(round(q * (len(ordered) - 1))), len(ordered) - 1)]


@dataclass
class System:
    name: str
    url: str
    redis_port: int
    processes: dict[str, int]  # every process of the system, by name: pid
    create: str | None  # the route that creates a thread, if the system has one
    turn: str
    # daprd metrics endpoints: sidecar round trips are counted from them.
    metrics_urls: list[str] = field(default_factory=list)
    streams: bool = False
    # A request that crosses the same hops as a turn but takes no step and writes nothing
    # (reading the thread): the least any turn can cost in this shape.
    floor: str | None = None
    results: dict[str, object] = field(default_factory=dict)

    async def new_thread(self, http: httpx.AsyncClient, n: int) -> str:
        if self.create is None:
            return f"t{n}-{time.monotonic_ns()}"
        response = await http.post(self.url + self.create, json={"agent": "bench"})
        return response.json()["id"]

    async def say(self, http: httpx.AsyncClient, thread: str, text: str = QUESTION) -> float:
        started = time.perf_counter()
        response = await http.post(
            self.url + self.turn.format(thread=thread), json={"content": text}
        )
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
            if message["type"] != "pmessage" or message["data"] in (b"del", b"expire"):
                continue
            key = message["channel"].decode().split(":", 1)[1]
            if "run-events" not in key:  # the pub/sub stream is not the thread's state
                self.keys.append(key)

    async def input_bytes(self) -> int:
        return int((await self.client.info("stats"))["total_net_input_bytes"])

    async def stop(self) -> None:
        self.task.cancel()
        await self.client.aclose()


# daprd's counters of calls between an app and its sidecar, and from a sidecar to the
# scheduler (reminders are scheduler jobs).
APP_TO_SIDECAR = "dapr_http_server_request_count"
SIDECAR_TO_APP = "dapr_http_client_completed_count"
SCHEDULER = "dapr.proto.scheduler.v1.Scheduler/"


async def sidecar_counts(http: httpx.AsyncClient, urls: list[str]) -> dict[str, float]:
    counts = {"app→sidecar": 0.0, "sidecar→app": 0.0, "sidecar→scheduler": 0.0}
    for url in urls:
        for line in (await http.get(url)).text.splitlines():
            if line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            if name.startswith(APP_TO_SIDECAR + "{"):
                counts["app→sidecar"] += float(value)
            elif name.startswith(SIDECAR_TO_APP + "{"):
                counts["sidecar→app"] += float(value)
            elif (
                name.startswith("dapr_grpc_io_client_completed_rpcs{")
                and SCHEDULER in name
                and "WatchJobs" not in name
            ):
                counts["sidecar→scheduler"] += float(value)
    return counts


async def quiet(http: httpx.AsyncClient, urls: list[str]) -> dict[str, float]:
    """The counters once background work (publishes, reminder clean-up) has settled."""
    counts = await sidecar_counts(http, urls)
    for _ in range(40):
        await asyncio.sleep(0.25)
        again = await sidecar_counts(http, urls)
        if again == counts:
            return again
        counts = again
    return counts


async def round_trips(system: System, http: httpx.AsyncClient) -> None:
    """Per turn, counting what a turn leaves to do later: a watchdog that outlived its run
    would fire after its period (THREADHOST_RUN_WATCHDOG_SECONDS) and remove itself."""
    threads = [await system.new_thread(http, 7000 + n) for n in range(ROUND_TRIP_TURNS)]
    before = await quiet(http, system.metrics_urls)
    for thread in threads:
        await system.say(http, thread)
    await asyncio.sleep(WATCHDOG_SECONDS + 2)
    after = await quiet(http, system.metrics_urls)
    system.results["trips"] = {k: (after[k] - before[k]) / ROUND_TRIP_TURNS for k in after}


async def floor(system: System, http: httpx.AsyncClient) -> None:
    """Latency and CPU of the floor request: sequential for latency, then as many clients
    as the smallest concurrency for CPU."""
    clients = min(CONCURRENCY)
    threads = [await system.new_thread(http, 8000 + n) for n in range(clients)]

    async def read(thread: str) -> float:
        started = time.perf_counter()
        response = await http.get(system.url + system.floor.format(thread=thread))
        assert response.status_code == 200, response.text
        return (time.perf_counter() - started) * 1000

    alone = [await read(threads[n % clients]) for n in range(FRESH_TURNS)]
    cpu_before = cpu_ms(system.processes)

    async def reads(thread: str) -> None:
        for _ in range(FLOOR_READS):
            await read(thread)

    await asyncio.gather(*(reads(t) for t in threads))
    used = {
        name: (ms - cpu_before[name]) / (clients * FLOOR_READS)
        for name, ms in cpu_ms(system.processes).items()
    }
    system.results["floor"] = (percentile(alone, 0.5), sum(used.values()), used)


async def streaming(system: System, http: httpx.AsyncClient) -> None:
    """Time to the first SSE event of a streamed turn, and the gaps between its events."""
    first, gaps, whole = [], [], []
    for n in range(STREAMED_TURNS):
        thread = await system.new_thread(http, 8000 + n)
        parser, started = EventStreamParser(), time.perf_counter()
        seen: list[float] = []
        async with http.stream(
            "POST",
            f"{system.url}{system.turn.format(thread=thread)}",
            json={"content": QUESTION, "mode": "stream"},
        ) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if parser.feed(line) is not None:
                    seen.append((time.perf_counter() - started) * 1000)
        first.append(seen[0])
        whole.append(seen[-1])
        gaps += [b - a for a, b in zip(seen, seen[1:], strict=False)]
    system.results["stream"] = (
        percentile(first, 0.5),
        percentile(first, 0.99),
        percentile(gaps, 0.99),
        percentile(whole, 0.5),
    )


async def measure(system: System) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        for n in range(20):  # warm-up
            await system.say(http, await system.new_thread(http, n), "warm up")
        fresh = []
        for n in range(FRESH_TURNS):
            thread = await system.new_thread(http, 1000 + n)
            fresh.append(await system.say(http, thread))
        system.results["p50"], system.results["p99"] = (
            percentile(fresh, 0.5),
            percentile(fresh, 0.99),
        )
        for clients, turns_each in CONCURRENCY.items():
            runs = sorted(
                [
                    await load(system, http, clients, turns_each, 5000 + 100 * n)
                    for n in range(LOAD_REPEATS)
                ],
                key=lambda run: run[1],
            )
            system.results[f"tps{clients}"] = sorted(run[0] for run in runs)[len(runs) // 2]
            _, system.results[f"cpu{clients}"], system.results[f"cpu{clients} by process"] = runs[
                len(runs) // 2
            ]
        if system.floor:
            await floor(system, http)
        if system.metrics_urls:
            await round_trips(system, http)
        if system.streams:
            await streaming(system, http)
        await growth(system, http)
        await at_rest(system, http)


async def at_rest(system: System, http: httpx.AsyncClient, threads: int = 20) -> None:
    """What an idle thread keeps in Redis after two short turns: bytes (Redis's own
    MEMORY USAGE of each of its keys) and keys, per thread, over `threads` threads."""
    made = [await system.new_thread(http, 20_000 + n) for n in range(threads)]
    for thread in made:
        for _ in range(2):
            await system.say(http, thread)
    await asyncio.sleep(1.0)  # let what the turns publish or schedule settle
    client = redis.Redis(port=system.redis_port)
    try:
        keys = [key async for key in client.scan_iter(count=1000)]
        mine = [k for k in keys if any(t.encode() in k for t in made)]
        used = [await client.memory_usage(key) or 0 for key in mine]
    finally:
        await client.aclose()
    system.results["rest"] = (sum(used) / threads, len(mine) / threads)


async def load(
    system: System, http: httpx.AsyncClient, clients: int, turns_each: int, first: int
) -> tuple[float, float, dict[str, float]]:
    """`clients` fresh threads taking `turns_each` turns at once: turns per second, and
    CPU ms per turn in all and by process."""
    threads = [await system.new_thread(http, first + n) for n in range(clients)]
    cpu_before, started = cpu_ms(system.processes), time.perf_counter()

    async def talk(thread: str) -> None:
        for _ in range(turns_each):
            await system.say(http, thread)

    await asyncio.gather(*(talk(t) for t in threads))
    turns = clients * turns_each
    elapsed = time.perf_counter() - started
    used = {name: (ms - cpu_before[name]) / turns for name, ms in cpu_ms(system.processes).items()}
    return turns / elapsed, sum(used.values()), used


async def growth(system: System, http: httpx.AsyncClient) -> None:
    """Latency, bytes and keys written by one turn as one thread grows (4 messages a turn)."""
    counter = WriteCounter(system.redis_port)
    await counter.start()
    thread, count, grown = await system.new_thread(http, 9999), 0, {}
    for point in GROWTH_POINTS:
        while count + 4 < point:
            await system.say(http, thread)
            count += 4
        await asyncio.sleep(0.3)  # let notifications of earlier turns arrive
        counter.keys.clear()
        bytes_before = await counter.input_bytes()
        latency = await system.say(http, thread)
        count += 4
        await asyncio.sleep(0.3)
        grown[point] = (
            latency,
            await counter.input_bytes() - bytes_before,
            len(counter.keys),
            len(set(counter.keys)),
        )
    system.results["growth"] = grown
    await counter.stop()
