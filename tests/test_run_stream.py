"""The SSE stream's orchestration, in process: the stored log, the live tail, and a log
that is out of reach for a moment (an actor host going) costing a poll, not the stream."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from actors.engine.run import StatusChanged, StepCompleted
from actors.threads.contract import EventsAnswer, RunView
from gateway.run_stream import stream_run
from gateway.thread_client import Unreachable

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def _run(status: str) -> RunView:
    return RunView(
        run_id="run_1",
        thread_id="th_1",
        status=status,
        agent={},
        steps=1,
        usage={},
        cost_usd=0.0,
        first_message=0,
        next_seq=3,
        created_at=NOW,
        updated_at=NOW,
        model_calls=[],
    )


EVENTS = [
    StatusChanged(seq=0, data={"status": "running"}, at=NOW),
    StepCompleted(seq=1, data={"step": 1, "messages": []}, at=NOW),
    StatusChanged(seq=2, data={"status": "completed"}, at=NOW),
]


class FlakyLog:
    """The committed log behind a read route that fails its first `failures` reads."""

    def __init__(self, failures: int, stored: int) -> None:
        self.failures, self.stored, self.reads = failures, stored, 0

    async def read_events(
        self, thread_id: str, run_id: str, owner: str, after: int
    ) -> EventsAnswer:
        self.reads += 1
        if self.reads <= self.failures:
            raise Unreachable("later")
        kept = [e for e in EVENTS[: self.stored] if e.seq > after]
        return EventsAnswer(run=_run("completed" if self.stored == 3 else "running"), events=kept)


async def _collect(log: FlakyLog, live: list[dict[str, Any]]) -> list[int]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for message in live:
        queue.put_nowait(message)
    frames = [
        frame
        async for frame in stream_run(
            log,
            queue,
            "alice",
            "th_1",
            "run_1",  # type: ignore[arg-type]
            after=-1,
            heartbeat=60,
            poll=0.01,
        )
    ]
    return [json.loads(f.split("data: ", 1)[1])["seq"] for f in frames if "data: " in f]


def _live(*seqs: int) -> dict[str, Any]:
    return {
        "run_id": "run_1",
        "thread_id": "th_1",
        "events": [EVENTS[n].model_dump(mode="json") for n in seqs],
    }


def test_an_unreachable_log_costs_a_poll_and_the_stream_goes_on() -> None:
    """The replay fails, then the gap fill for a live event fails: nothing is sent out
    of order, and the next poll sends every event once."""
    log = FlakyLog(failures=2, stored=3)
    assert asyncio.run(asyncio.wait_for(_collect(log, [_live(2)]), 5)) == [0, 1, 2]
    assert log.reads == 3


def test_live_events_follow_the_replay_without_repeats() -> None:
    log = FlakyLog(failures=0, stored=1)
    assert asyncio.run(asyncio.wait_for(_collect(log, [_live(0, 1), _live(2)]), 5)) == [0, 1, 2]
