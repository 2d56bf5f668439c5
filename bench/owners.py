"""`./dev bench owners`: one owner against many, on the split shape with two actor hosts
(Redis), with the per-caller limits the Kubernetes overlays ship (every request admitted
by its owner's actor).

Four callers send the same traffic, cell by cell in turn (twice: in order, then in
reverse, so that a host slowing as it fills weighs on each alike):
- many people, each a bearer token of their own (one owner each), straight to the gateway;
- one service acting for as many end users (`threadhost-end-user`), through its own
  daprd (service invocation: one hop more);
- the same service acting for nobody: one owner for everything;
- ten services, each acting for nobody through its own daprd: many owners over the same
  path as the end users' (the fair baseline for them: the hop is in both).

For each: thread creations, turns and listings per second at 10 and 50 concurrent
clients, and what each call cost the host's own processes in CPU (on this 2-core machine
the callers' sidecars and the driver share the cores; on a cluster they do not, and the
host's CPU per call is what bounds its throughput), after one untimed thread for each
of each caller's users. Then removal from one owner's list at 100 and 100,000 threads,
in-process on the Owner's book (what it reads and writes, and how long it takes).

    ./dev bench owners
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from statistics import mean
from typing import Any

import httpx
import jwt

from actors.threads.owner_book import OwnerBook
from actors.threads.owner_contract import AddThread, RemoveThread
from bench.measure import cpu_ms
from bench.run import start_redis
from tests.dapr_peers import caller_sidecar
from threadhost.processes import Process
from threadhost.runtime import PROJECT_ROOT, dapr_bin_dir
from threadhost.stack import Stack, StackConfig

SECRET = "bench-owners-secret-0123456789abcdef"
USERS = 200
# Services of their own, each through its own daprd: many owners over the same path as a
# service's end users (the baseline that leaves the hop out of the comparison).
SERVICES = [f"service-{n}" for n in range(10)]
CALLS = 600
CLIENTS = (10, 50)


def _person(n: int) -> dict[str, str]:
    token = jwt.encode({"sub": f"user-{n}", "exp": int(time.time()) + 3600}, SECRET, "HS256")
    return {"authorization": f"Bearer {token}"}


async def _rate(clients: int, calls: int, work: Callable[[int], Awaitable[None]]) -> float:
    """Calls per second, `clients` at a time."""
    queue = iter(range(calls))

    async def client() -> None:
        for n in queue:
            await work(n)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return calls / (time.perf_counter() - started)


class Caller:
    """One of the four callers: caller n of USERS calls `urls[n % len(urls)]` with
    `headers_of(n)`. Each operation at each number of clients gives calls per second and
    the CPU milliseconds per call of the host's own processes (gateway, actor hosts, their
    sidecars, the control plane, Redis), leaving out the callers' sidecars and this
    driver, which on a cluster run on the callers' machines, not threadhost's."""

    def __init__(self, urls: list[str], headers_of: Callable[[int], dict[str, str]]) -> None:
        self.urls, self.headers_of = urls, headers_of
        self.threads: dict[int, str] = {}
        self.rates: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    async def measure(self, name: str, clients: int, host: dict[str, int]) -> None:
        work = {"creations": self._create, "turns": self._turn, "listings": self._list}[name]
        https = [httpx.AsyncClient(base_url=url, timeout=120) for url in self.urls]
        try:
            before = sum(cpu_ms(host).values())
            rate = await _rate(clients, CALLS, lambda n: work(https, n % USERS))
            used = (sum(cpu_ms(host).values()) - before) / CALLS
        finally:
            for http in https:
                await http.aclose()
        self.rates.setdefault(f"{name} @{clients}", []).append(rate)
        self.cpu.setdefault(f"{name} @{clients}", []).append(used)

    async def first_contact(self, n: int) -> None:
        https = [httpx.AsyncClient(base_url=url, timeout=120) for url in self.urls]
        try:
            await self._create(https, n)
        finally:
            for http in https:
                await http.aclose()

    async def _create(self, https: list[httpx.AsyncClient], n: int) -> None:
        answer = await https[n % len(https)].post(
            "/v1/threads", json={}, headers=self.headers_of(n)
        )
        answer.raise_for_status()
        self.threads[n] = answer.json()["id"]

    async def _turn(self, https: list[httpx.AsyncClient], n: int) -> None:
        answer = await https[n % len(https)].post(
            f"/v1/threads/{self.threads[n]}/messages",
            json={"content": f"turn {n}"},
            headers=self.headers_of(n),
        )
        answer.raise_for_status()

    async def _list(self, https: list[httpx.AsyncClient], n: int) -> None:
        answer = await https[n % len(https)].get("/v1/threads?limit=20", headers=self.headers_of(n))
        answer.raise_for_status()


async def _measure(callers: dict[str, Caller], host: dict[str, int]) -> None:
    """Every cell for every caller in turn, twice (in order, then in reverse): a host
    that slows as it fills (more actors, more keys) weighs on each caller alike. First,
    untimed, one thread for each of each caller's users: a caller's first contact costs
    once (its owners' actors activated, an end user listed with their service), and the
    cells measure the traffic after it."""
    for caller in callers.values():
        await _rate(CLIENTS[0], USERS, lambda n, c=caller: c.first_contact(n))
    for clients in CLIENTS:
        for name in ("creations", "turns", "listings"):
            print(f"  {name} at {clients} clients ...", flush=True)
            for order in (list(callers), list(reversed(callers))):
                for caller in order:
                    await callers[caller].measure(name, clients, host)


def measure_callers(folder: Path) -> dict[str, Caller]:
    redis, port = start_redis(folder, "redis-owners")
    env = {
        "THREADHOST_REDIS_HOST": f"127.0.0.1:{port}",
        "THREADHOST_AGENTS_DIRS": json.dumps([str(PROJECT_ROOT / "agents")]),
        "THREADHOST_AUTH_MODE": "jwt",
        "THREADHOST_JWT_SECRET": SECRET,
        "THREADHOST_SERVICE_CALLERS": json.dumps(["support-portal", *SERVICES]),
        "THREADHOST_RATE_LIMIT_PER_MINUTE": "1000000",
        "THREADHOST_MAX_CONCURRENT_RUNS": "1000",
    }
    config = StackConfig(
        bin_dir=dapr_bin_dir(),
        data_dir=folder / "owners",
        profile="redis",
        env=env,
        actors_app_id="threads-owners",
        gateway_app_id="gateway-owners",
    )
    sidecars: list[tuple[Process, str]] = []
    try:
        with Stack(config, split=True, actor_hosts=2) as stack:
            host = {p.name: p.pid for p in stack.processes()} | {"redis": redis.pid}
            try:
                for app_id in ["support-portal", *SERVICES]:
                    sidecars.append(caller_sidecar(stack, app_id, folder))
                portal, services = sidecars[0][1], [url for _, url in sidecars[1:]]
                callers = {
                    "many people": Caller([stack.api.url], _person),
                    "service, end users": Caller(
                        [portal], lambda n: {"threadhost-end-user": f"customer-{n}"}
                    ),
                    "service, one owner": Caller([portal], lambda n: {}),
                    "ten services": Caller(services, lambda n: {}),
                }
                asyncio.run(_measure(callers, host))
            finally:
                for sidecar, _ in sidecars:
                    sidecar.stop()
    finally:
        redis.stop()
    return callers


class _Store:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.reads = self.writes = 0

    async def get(self, key: str) -> Any | None:
        self.reads += 1
        return self.data.get(key)

    async def set(self, key: str, value: Any) -> None:
        self.writes += 1
        self.data[key] = value

    async def remove(self, key: str) -> None:
        self.writes += 1
        self.data.pop(key, None)


def measure_removal(count: int) -> tuple[int, int, float]:
    """Reads, writes and milliseconds to remove the oldest of `count` threads."""
    store = _Store()
    book = OwnerBook(store)
    now = datetime.now(UTC)

    async def fill() -> None:
        for n in range(count):
            await book.add_thread(AddThread(id=f"th_{n}", agent="support", created_at=now))

    asyncio.run(fill())
    store.reads = store.writes = 0
    started = time.perf_counter()
    asyncio.run(book.remove_thread(RemoveThread(thread_id="th_0")))
    return store.reads, store.writes, (time.perf_counter() - started) * 1000


def main(argv: list[str]) -> int:
    folder = Path(tempfile.mkdtemp(prefix="threadhost-owners-"))
    try:
        callers = measure_callers(folder)
        base = callers["many people"]
        head = f"\n{'':<16}" + "".join(f"{name:>26}" for name in callers)
        print("\ncalls per second (ratio to many people)" + head)
        for row in base.rates:
            cells = "".join(
                f"{mean(c.rates[row]):>17.0f} ({mean(c.rates[row]) / mean(base.rates[row]):>4.2f}x)"
                for c in callers.values()
            )
            print(f"{row:<16}{cells}")
        print(
            "\nthe host's CPU ms per call (ratio: many people's / this, the share of the"
            " same hosts' capacity)" + head
        )
        for row in base.cpu:
            cells = "".join(
                f"{mean(c.cpu[row]):>17.1f} ({mean(base.cpu[row]) / mean(c.cpu[row]):>4.2f}x)"
                for c in callers.values()
            )
            print(f"{row:<16}{cells}")
        print("\nremoval from one owner's list (the Owner's book, in-process):")
        for count in (100, 100_000):
            reads, writes, ms = measure_removal(count)
            print(f"  at {count:>7} threads: {reads} reads, {writes} writes, {ms:.2f} ms")
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
