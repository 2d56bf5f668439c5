"""`./dev bench doors`: time to the first token of a streamed turn through the OpenAI door
(`/v1/chat/completions`, `stream: true`) against threadhost's own stream
(`/v1/threads/{id}/messages`, `mode: stream`), on the same stack, alternately.

Each turn is the support agent's first model call on a fresh thread (zero-latency scripted
model, Redis profile): the first text is its "Let me look that order up."
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.measure import percentile
from bench.run import shape_stack

TURNS = 100
QUESTION = "Where is my order 1001?"


async def _first_token(http: httpx.AsyncClient, door: str) -> float:
    """Milliseconds from the request to its first text."""
    if door == "openai":
        request = (
            "/v1/chat/completions",
            {
                "model": "support",
                "stream": True,
                "messages": [{"role": "user", "content": QUESTION}],
            },
        )
    else:
        thread = (await http.post("/v1/threads", json={"agent": "support"})).json()["id"]
        request = (f"/v1/threads/{thread}/messages", {"content": QUESTION, "mode": "stream"})
    started = time.perf_counter()
    first = None
    async with http.stream("POST", request[0], json=request[1]) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if first is None and _has_text(door, line):
                first = (time.perf_counter() - started) * 1000
    assert first is not None, door
    return first


def _has_text(door: str, line: str) -> bool:
    if not line.startswith("data: ") or line == "data: [DONE]":
        return False
    data = json.loads(line[len("data: ") :])
    if door == "openai":
        return any(c["delta"].get("content") for c in data.get("choices", []))
    if "text" in data and "step" in data:  # token.delta
        return True
    return any(m.get("kind") == "assistant_text" for m in data.get("data", {}).get("messages", []))


async def measure(url: str) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"openai": [], "threads": []}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for _ in range(10):  # warm-up
            for door in found:
                await _first_token(http, door)
        for _ in range(TURNS):
            for door, times in found.items():
                times.append(await _first_token(http, door))
    return found


def main(argv: list[str]) -> int:
    shapes = argv or ["embedded", "split"]
    folder = Path(tempfile.mkdtemp(prefix="threadhost-bench-doors-"))
    try:
        for shape in shapes:
            with shape_stack(folder, shape) as (stack, _, _):
                print(f"measuring {shape} ...", flush=True)
                found = asyncio.run(measure(stack.api.url))
            print(
                f"\n{shape}: time to the first token of a streamed turn ({TURNS} fresh "
                "threads each, alternately)"
            )
            for door, label in (
                ("threads", "/v1/threads/{id}/messages"),
                ("openai", "/v1/chat/completions"),
            ):
                times = found[door]
                print(
                    f"  {label:28} p50 {percentile(times, 0.5):6.1f} ms  "
                    f"p99 {percentile(times, 0.99):6.1f} ms"
                )
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
