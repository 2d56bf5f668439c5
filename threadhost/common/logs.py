"""Structured logs: one JSON object per line, carrying the thread and run being served."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

thread_id: ContextVar[str | None] = ContextVar("thread_id", default=None)
run_id: ContextVar[str | None] = ContextVar("run_id", default=None)


class JsonFormatter(logging.Formatter):
    def __init__(self, instance: str) -> None:
        super().__init__()
        self.instance = instance

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "instance": self.instance,
        }
        if (thread := thread_id.get()) is not None:
            entry["thread_id"] = thread
        if (run := run_id.get()) is not None:
            entry["run_id"] = run
        if record.exc_info and record.exc_info[1] is not None:
            # The error, not its stack trace: frames can hold request data and keys.
            error = record.exc_info[1]
            entry["error"] = f"{type(error).__name__}: {error}"
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, json_format: bool, instance: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(instance)
        if json_format
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The SDK prints a line per sidecar health probe at INFO.
    logging.getLogger("dapr").setLevel(max(root.level, logging.WARNING))
