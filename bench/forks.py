"""`./dev bench forks`: what a fork costs, in bytes and time, by the thread's length.

For each length, a thread is grown to that many messages by turns (the scripted model
echoes each), then forked near its end a few times; the bench
prints the time a fork takes (the gateway's call: the fork's pages, its record, its
listing) and what it wrote to Redis, beside a plain thread's creation as the baseline
measured in the same run, and a turn on the fork beside a turn on the original.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from bench.measure import percentile
from bench.run import shape_stack

LENGTHS = (50, 500, 5_000)
FORKS = 5


def _written(r: redis.Redis) -> int:
    return sum(r.memory_usage(key) or 0 for key in r.scan_iter(count=1000))


def _timed(http: httpx.Client, method: str, path: str, **kwargs: object) -> tuple[float, dict]:
    started = time.perf_counter()
    response = http.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code in (200, 201), response.text
    return (time.perf_counter() - started) * 1000, response.json()


def measure(url: str, port: int) -> None:
    r = redis.Redis(port=port)
    with httpx.Client(base_url=url, timeout=120) as http:
        thread, count = http.post("/v1/threads", json={}).json()["id"], 0
        for length in LENGTHS:
            while count < length:
                text = f"Message {count}: " + "w " * 40
                said = http.post(f"/v1/threads/{thread}/messages", json={"content": text})
                assert said.status_code == 200, said.text
                count = said.json()["message_count"]
            creates, forks, sizes = [], [], []
            for _ in range(FORKS):
                before = _written(r)
                took, _ = _timed(http, "POST", "/v1/threads", json={})
                creates.append(took)
                made = _written(r)
                took, fork = _timed(
                    http, "POST", f"/v1/threads/{thread}/fork", json={"message_index": count - 1}
                )
                forks.append(took)
                sizes.append((made - before, _written(r) - made))
            turn_fork, _ = _timed(
                http, "POST", f"/v1/threads/{fork['id']}/messages", json={"content": "Fork?"}
            )
            turn_original, _ = _timed(
                http, "POST", f"/v1/threads/{thread}/messages", json={"content": "Original?"}
            )
            print(
                f"  {count:>6} messages: fork p50 {percentile(forks, 0.5):7.1f} ms "
                f"({sizes[-1][1] / 1024:8.1f} KiB in Redis) | new thread "
                f"{percentile(creates, 0.5):5.1f} ms ({sizes[-1][0] / 1024:4.1f} KiB) | "
                f"a turn after: fork {turn_fork:5.1f} ms, original {turn_original:5.1f} ms",
                flush=True,
            )


def main(argv: list[str]) -> int:
    shapes = argv or ["split"]
    folder = Path(tempfile.mkdtemp(prefix="threadhost-bench-forks-"))
    try:
        for shape in shapes:
            with shape_stack(folder, shape) as (stack, _, port):
                print(f"\n{shape}: forking a thread near its end ({FORKS} forks per length)")
                measure(stack.api.url, port)
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
