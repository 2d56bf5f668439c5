"""`./dev bench owners`: one owner against many, on the split shape with two actor hosts
(Redis), with the per-caller limits the Kubernetes overlays ship (every request admitted
by its owner's actor).

Four callers send the same traffic:
- many people, each a bearer token of their own (one owner each), straight to the gateway;
- one service acting for as many end users (`threadhost-end-user`), through its own
  daprd (service invocation: one hop more);
- the same service acting for nobody: one owner for everything;
- ten services, each acting for nobody through its own daprd: many owners over the same
  path as the end users' (the fair baseline for them: the hop is in both).

For each: thread creations, turns and listings per second at 10 and 50 concurrent
clients. Then removal from one owner's list at 100 and 100,000 threads, in-process on
the Owner's book (what it reads and writes, and how long it takes).

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
from typing import Any

import httpx
import jwt

from actors.threads.owner_book import OwnerBook
from actors.threads.owner_contract import AddThread, RemoveThread
from bench.run import start_redis
from tests.dapr_peers import caller_sidecar
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


async def _measure(url: str, headers_of: Callable[[int], dict[str, str]]) -> dict[str, float]:
    found: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        threads: dict[int, str] = {}

        async def create(n: int) -> None:
            answer = await http.post("/v1/threads", json={}, headers=headers_of(n % USERS))
            answer.raise_for_status()
            threads[n % USERS] = answer.json()["id"]

        async def turn(n: int) -> None:
            user = n % USERS
            answer = await http.post(
                f"/v1/threads/{threads[user]}/messages",
                json={"content": f"turn {n}"},
                headers=headers_of(user),
            )
            answer.raise_for_status()

        async def listing(n: int) -> None:
            answer = await http.get("/v1/threads?limit=20", headers=headers_of(n % USERS))
            answer.raise_for_status()

        for clients in CLIENTS:
            found[f"create/s @{clients}"] = await _rate(clients, CALLS, create)
            found[f"turns/s @{clients}"] = await _rate(clients, CALLS, turn)
            found[f"lists/s @{clients}"] = await _rate(clients, CALLS, listing)
    return found


async def _measure_spread(urls: list[str]) -> dict[str, float]:
    """The same traffic, caller n through service n % len(urls) (each its own owner)."""
    found: dict[str, float] = {}
    clients_of = [httpx.AsyncClient(base_url=url, timeout=120) for url in urls]
    try:
        threads: dict[int, str] = {}

        def http(n: int) -> httpx.AsyncClient:
            return clients_of[n % USERS % len(urls)]

        async def create(n: int) -> None:
            answer = await http(n).post("/v1/threads", json={})
            answer.raise_for_status()
            threads[n % USERS] = answer.json()["id"]

        async def turn(n: int) -> None:
            answer = await http(n).post(
                f"/v1/threads/{threads[n % USERS]}/messages", json={"content": f"turn {n}"}
            )
            answer.raise_for_status()

        async def listing(n: int) -> None:
            (await http(n).get("/v1/threads?limit=20")).raise_for_status()

        for clients in CLIENTS:
            found[f"create/s @{clients}"] = await _rate(clients, CALLS, create)
            found[f"turns/s @{clients}"] = await _rate(clients, CALLS, turn)
            found[f"lists/s @{clients}"] = await _rate(clients, CALLS, listing)
    finally:
        for client in clients_of:
            await client.aclose()
    return found


def measure_callers(folder: Path) -> dict[str, dict[str, float]]:
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
    results: dict[str, dict[str, float]] = {}
    try:
        with Stack(config, split=True, actor_hosts=2) as stack:
            sidecar, portal = caller_sidecar(stack, "support-portal", folder)
            try:
                print("measuring many people ...", flush=True)
                results["many people"] = asyncio.run(_measure(stack.api.url, _person))
                print("measuring one service for many end users ...", flush=True)
                results["service, end users"] = asyncio.run(
                    _measure(portal, lambda n: {"threadhost-end-user": f"customer-{n}"})
                )
                print("measuring one service for nobody ...", flush=True)
                results["service, one owner"] = asyncio.run(_measure(portal, lambda n: {}))
                print("measuring ten services, each for nobody ...", flush=True)
                services = [caller_sidecar(stack, app_id, folder) for app_id in SERVICES]
                results["ten services"] = asyncio.run(_measure_spread([url for _, url in services]))
                for other, _ in services:
                    other.stop()
            finally:
                sidecar.stop()
    finally:
        redis.stop()
    return results


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
        results = measure_callers(folder)
        rows = list(next(iter(results.values())))
        base = results["many people"]
        print(f"\n{'':<16}" + "".join(f"{name:>26}" for name in results))
        for row in rows:
            cells = "".join(
                f"{values[row]:>17.0f} ({values[row] / base[row]:>4.2f}x)"
                for values in results.values()
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
