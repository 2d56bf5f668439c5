"""Publishes a run's events to the run-events topic, for every gateway replica to forward.

Step events go out after their checkpoint is committed, in order, each with its sequence
number; a subscriber that misses one fills the gap from the run's stored log. Token
deltas are not stored: they are batched (at most one message per `DELTA_WINDOW`) and
published while the model streams.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from actors.engine.run import RunEvent

DELTA_WINDOW = 0.05

Publish = Callable[[bytes], Awaitable[None]]


def step_events(thread_id: str, run_id: str, events: list[RunEvent]) -> bytes:
    return json.dumps({"thread_id": thread_id, "run_id": run_id,
                       "events": [e.model_dump(mode="json") for e in events]}).encode()


class DeltaBatcher:
    """Collects a streaming model's text and hands it on in small batches."""

    def __init__(self, thread_id: str, run_id: str, step: int,
                 send: Callable[[bytes], None]) -> None:
        self._head: dict[str, Any] = {"thread_id": thread_id, "run_id": run_id, "step": step}
        self._send = send
        self._pending = ""
        self._last = 0.0

    async def __call__(self, text: str) -> None:
        self._pending += text
        if time.monotonic() - self._last >= DELTA_WINDOW:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._send(json.dumps({**self._head, "delta": self._pending}).encode())
            self._pending, self._last = "", time.monotonic()
