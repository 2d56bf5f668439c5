"""`./dev bench herd`: a herd of follow-ups due in the same minute, against a vendor that
refuses requests above its concurrency (tests/fakes/bounded_vendor.py).

The split shape with two actor hosts, on Redis. N threads (2,000 unless given) each get a
daily follow-up at the same minute; when it comes, each run makes one model call to the
vendor, which answers 429 above LIMIT requests at once. With THREADHOST_MODEL_CONCURRENCY
at the vendor's limit, the runs queue under the bound: the bench prints the vendor's peak
concurrency, what it served and refused, how many runs failed, and when the last one
completed (from the minute they were due). `--unbounded` runs the same herd without the
bound, for comparison.

    ./dev bench herd [N] [--unbounded]
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.run import start_redis
from tests.fakes.bounded_vendor import BoundedVendor
from threadhost.processes import Process
from threadhost.runtime import PROJECT_ROOT, dapr_bin_dir
from threadhost.stack import Stack, StackConfig

LIMIT, LATENCY, JITTER = 20, 0.2, 30
CLIENTS = 20
CHECKIN = {"name": "checkin", "model": "openai:gpt-4o-mini", "system_prompt": "Check in."}


async def _all(count: int, work) -> list:  # type: ignore[no-untyped-def]
    """`work(n)` for n below count, CLIENTS at a time."""
    gate = asyncio.Semaphore(CLIENTS)

    async def one(n: int):  # type: ignore[no-untyped-def]
        async with gate:
            return await work(n)

    return await asyncio.gather(*(one(n) for n in range(count)))


async def _herd(url: str, count: int) -> tuple[list[str], datetime]:
    """Threads with a daily follow-up each at one minute; that minute."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:

        async def create(_: int) -> str:
            answer = await http.post("/v1/threads", json={"agent": "checkin"})
            answer.raise_for_status()
            return answer.json()["id"]

        threads = await _all(count, create)
        due = (datetime.now(UTC) + timedelta(seconds=75)).replace(second=0, microsecond=0)
        when = f"cron {due.minute} {due.hour} * * *"

        async def schedule(n: int) -> None:
            answer = await http.post(
                f"/v1/threads/{threads[n]}/followups", json={"when": when, "note": "check in"}
            )
            answer.raise_for_status()

        await _all(count, schedule)
    return threads, due


async def _statuses(url: str, threads: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:

        async def runs(n: int) -> list[str]:
            answer = await http.get(f"/v1/threads/{threads[n]}/runs")
            if answer.status_code != 200:
                return [f"unread ({answer.status_code})"]
            return [run["status"] for run in answer.json()["runs"]]

        for statuses in await _all(len(threads), runs):
            for status in statuses or ["none"]:
                counts[status] = counts.get(status, 0) + 1
    return counts


def run_herd(folder: Path, count: int, bounded: bool) -> dict[str, object]:
    agents = folder / "agents"
    agents.mkdir(exist_ok=True)
    (agents / "checkin.json").write_text(json.dumps(CHECKIN))
    redis, port = start_redis(folder, f"redis-herd-{bounded}")
    vendor = BoundedVendor(limit=LIMIT, latency=LATENCY).start()
    env = {
        "THREADHOST_REDIS_HOST": f"127.0.0.1:{port}",
        "THREADHOST_AGENTS_DIRS": json.dumps([str(PROJECT_ROOT / "agents"), str(agents)]),
        "THREADHOST_OPENAI_BASE_URL": vendor.url,
        "THREADHOST_OPENAI_API_KEY": "sk-bench-herd",
        "THREADHOST_MAX_FOLLOWUPS_PER_OWNER": "0",
        "THREADHOST_FOLLOWUP_JITTER_SECONDS": str(JITTER),
        "THREADHOST_MODEL_CONCURRENCY": json.dumps({"openai": LIMIT} if bounded else {}),
    }
    config = StackConfig(
        bin_dir=dapr_bin_dir(),
        data_dir=folder / f"herd-{bounded}",
        profile="redis",
        env=env,
        actors_app_id=f"threads-herd-{int(bounded)}",
        gateway_app_id=f"gateway-herd-{int(bounded)}",
    )
    processes: list[Process] = [redis]
    try:
        with Stack(config, split=True, actor_hosts=2) as stack:
            started = time.monotonic()
            threads, due = asyncio.run(_herd(stack.api.url, count))
            set_up = time.monotonic() - started
            print(f"  {count} follow-ups set up in {set_up:.0f} s, due at {due:%H:%M} UTC")
            deadline = due + timedelta(seconds=JITTER + 600)
            while vendor.served + vendor.refused < count and datetime.now(UTC) < deadline:
                time.sleep(0.5)
                if not bounded and datetime.now(UTC) > due + timedelta(seconds=JITTER + 60):
                    break  # the refused runs failed: nobody asks again
            last = vendor.last_served_at - time.monotonic() + time.time()
            statuses = asyncio.run(_statuses(stack.api.url, threads))
    finally:
        vendor.stop()
        for process in processes:
            process.stop()
    return {
        "bound": LIMIT if bounded else None,
        "vendor peak": vendor.peak,
        "served": vendor.served,
        "refused (429)": vendor.refused,
        "runs": statuses,
        "last completed after due (s)": round(last - due.timestamp(), 1),
    }


def main(argv: list[str]) -> int:
    count = int(next((a for a in argv if a.isdigit()), "2000"))
    shapes = [True, False] if "--unbounded" in argv else [True]
    folder = Path(tempfile.mkdtemp(prefix="threadhost-herd-"))
    try:
        print(
            f"herd: {count} follow-ups due in one minute (jitter {JITTER} s), split with two "
            f"actor hosts on Redis; vendor refuses above {LIMIT} at once, {LATENCY} s a call"
        )
        for bounded in shapes:
            print(f"measuring {'with' if bounded else 'without'} the bound ...", flush=True)
            for name, value in run_herd(folder, count, bounded).items():
                print(f"  {name:<30} {value}")
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
