"""`./dev bench context`: a thread of thousands of messages against a small token budget,
in process (the thread service on a dict-backed store, the scripted model): how big each
model request is, how often the thread is compacted, and what a turn writes as it grows.

Each turn is a user's message, a tool call, its result and the answer; every 40th tool
result is very large (200,000 characters). The test suite runs the same thread
(tests/test_context.py) and asserts what this prints.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.dapr_host.engine_setup import build_engine
from actors.engine.agents import AgentDefinition
from actors.engine.context import message_tokens
from actors.engine.engine import Engine
from actors.engine.messages import ToolCall, ToolResult
from actors.engine.provider import ModelRequest, ModelResponse, Provider, StreamEvent
from actors.engine.tools import function_tool
from actors.engine.usage import estimated_tokens
from actors.threads.contract import CreateThread, PostMessage, ReadHistory, RunAnswer
from actors.threads.service import ThreadService
from actors.threads.store import ThreadStore
from tests.memory_effects import MemoryEffects, MemoryState
from threadhost.common.settings import Settings

ROOT = Path(__file__).parent.parent
BUDGET = 6_000
BIG_EVERY, BIG_CHARS = 40, 200_000
POINTS = (100, 1_000, 5_000)


@dataclass
class Sent:
    """One model request: how long the thread was, its size (the text it carries, at four
    characters a token, and a few tokens per message), and whether it keeps every tool
    call with its result."""

    thread_length: int
    tokens: int
    purpose: str
    pairs_intact: bool


@dataclass
class LongThread:
    budget: int
    requests: list[Sent] = field(default_factory=list)
    # Per turn: thread length after it, bytes and keys its commits wrote, compacted or not.
    turns: list[tuple[int, int, int, bool]] = field(default_factory=list)
    summaries: list[dict] = field(default_factory=list)
    history_head: str = ""
    # The thread's store and engine once it is long (to fork it, or go on with it).
    state: MemoryState | None = None
    engine: Any = None


def _pairs_intact(request: ModelRequest) -> bool:
    calls = {m.call_id for m in request.messages if isinstance(m, ToolCall)}
    results = [m.call_id for m in request.messages if isinstance(m, ToolResult)]
    return all(r in calls for r in results) and calls <= set(results)


class Recorded(Provider):
    """A provider that keeps what it was sent (the scripted model answers)."""

    def __init__(self, inner: Provider, seen: LongThread, length: list[int]) -> None:
        self.vendor, self.model = inner.vendor, inner.model
        self._inner, self._seen, self._length = inner, seen, length

    def _note(self, request: ModelRequest) -> None:
        tokens = (
            estimated_tokens(request.system)
            + sum(message_tokens(m) for m in request.messages)
            + estimated_tokens(json.dumps([t.model_dump() for t in request.tools]))
        )
        self._seen.requests.append(
            Sent(self._length[0], tokens, request.purpose, _pairs_intact(request))
        )

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self._note(request)
        return await self._inner.complete(request)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        self._note(request)
        async for event in self._inner.stream(request):
            yield event


def long_thread_engine(seen: LongThread, length: list[int]) -> Engine:
    settings = Settings(agents_dirs=[str(ROOT / "agents")], step_chain_budget_ms=10_000)
    engine = build_engine(settings, {})
    calls = [0]

    @function_tool
    def read_log(day: str) -> str:
        """The service's log of a day."""
        calls[0] += 1
        size = BIG_CHARS if calls[0] % BIG_EVERY == 0 else 200
        return f"log of {day}: " + ("all quiet, " * (size // 11 + 1))[:size]

    engine.tools.add(read_log)
    engine.catalog.add(
        AgentDefinition(
            name="log-watcher",
            system_prompt="You keep an eye on the logs.",
            tools=["read_log"],
            context={"max_input_tokens": BUDGET},
            script=[
                {"tool_calls": [{"name": "read_log", "arguments": {"day": "today"}}]},
                "All quiet today.",
            ],
        )
    )
    inner = engine.providers.for_agent

    async def recorded(agent: AgentDefinition) -> Provider:
        return Recorded(await inner(agent), seen, length)

    object.__setattr__(engine.providers, "for_agent", recorded)
    return engine


def run_long_thread(messages: int = 5_000) -> LongThread:
    seen = LongThread(budget=BUDGET)
    length = [0]
    engine = long_thread_engine(seen, length)
    state = MemoryState()
    service = ThreadService(
        "th_long",
        ThreadStore(state),
        engine,
        MemoryEffects(state),
        Settings(step_chain_budget_ms=10_000),
    )

    async def drive() -> None:
        await service.create(CreateThread(agent="log-watcher", owner="ann"))
        turn = 0
        while length[0] < messages:
            turn += 1
            before = (state.bytes_written, state.keys_written, len(seen.summaries))
            answer = await service.post_message(
                PostMessage(text=f"Turn {turn}: anything in the logs?", owner="ann", wait=True)
            )
            assert isinstance(answer, RunAnswer) and answer.run.status == "completed", answer
            length[0] = answer.message_count
            record = await service._store.record()
            if record.summary is not None and (
                not seen.summaries or seen.summaries[-1]["index"] != record.summary.index
            ):
                summary = await service._store.summary(record)
                seen.summaries.append(
                    summary.model_dump(include={"index", "start", "end", "omitted"})
                )
            seen.turns.append(
                (
                    length[0],
                    state.bytes_written - before[0],
                    state.keys_written - before[1],
                    len(seen.summaries) > before[2],
                )
            )
        history = await service.reads.read_history(ReadHistory(owner="ann", offset=0, limit=1))
        seen.history_head = history.messages[0].text

    asyncio.run(drive())
    seen.state, seen.engine = state, engine
    return seen


def at(seen: LongThread, length: int) -> tuple[int, float]:
    """The largest request a model got while the thread was about `length` messages long
    (the turns around it), and the median bytes a turn wrote there."""
    near = [t for t in seen.turns if abs(t[0] - length) <= 40 and not t[3]]
    sizes = [
        r.tokens
        for r in seen.requests
        if abs(r.thread_length - length) <= 40 and r.purpose == "turn"
    ]
    written = sorted(b for _, b, _, _ in near)
    return max(sizes), written[len(written) // 2]


def main(argv: list[str]) -> int:
    target = int(argv[0]) if argv else max(POINTS)
    seen = run_long_thread(target)
    print(
        f"\na thread of {target} messages, a budget of {seen.budget} tokens per request, "
        f"a {BIG_CHARS:,}-character tool result every {BIG_EVERY} turns:\n"
    )
    print(f"{'thread length':>14} {'largest request (tokens)':>26} {'bytes written per turn':>24}")
    for point in POINTS:
        if point <= target:
            size, written = at(seen, point)
            print(f"{point:>14} {size:>26} {written:>24.0f}")
    compactions = sum(1 for t in seen.turns if t[3])
    print(
        f"\nsummaries made: {len(seen.summaries)} (in {compactions} of {len(seen.turns)} "
        f"turns); every request within the budget: "
        f"{all(r.tokens <= seen.budget for r in seen.requests)}; tool calls and results "
        f"together: {all(r.pairs_intact for r in seen.requests)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
