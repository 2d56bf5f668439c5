"""threadhost's runs as A2A tasks, in the protocol's own words (v1.0): a task is a run,
its context the run's thread. Plain data, shared by the gateway's A2A door and the actor
host's push notifications; no A2A SDK needed here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

# A run's status as a task's state. `incomplete` (a budget ended it) has no state of its
# own in A2A: it is a failure whose message says why.
TASK_STATES = {
    "queued": "TASK_STATE_SUBMITTED",
    "running": "TASK_STATE_WORKING",
    "requires_action": "TASK_STATE_INPUT_REQUIRED",
    "completed": "TASK_STATE_COMPLETED",
    "failed": "TASK_STATE_FAILED",
    "incomplete": "TASK_STATE_FAILED",
    "cancelled": "TASK_STATE_CANCELED",
}
_TASK_ID = re.compile(r"^([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{1,64})$")


def task_id(thread_id: str, run_id: str) -> str:
    """A task's id: its thread's and its run's, so any replica finds it."""
    return f"{thread_id}.{run_id}"


def parse_task_id(value: str) -> tuple[str, str] | None:
    """The thread and run a task id names; None if it names none."""
    found = _TASK_ID.match(value)
    return (found.group(1), found.group(2)) if found else None


def push_notification(event: dict[str, Any], at: datetime) -> dict[str, Any]:
    """A thread event's data (a run's state change) as an A2A push notification: a
    StreamResponse holding the task's status update."""
    thread_id, run_id = event["thread_id"], event["run_id"]
    status: dict[str, Any] = {
        "state": TASK_STATES[event["status"]],
        "timestamp": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    return {
        "statusUpdate": {
            "taskId": task_id(thread_id, run_id),
            "contextId": thread_id,
            "status": status,
        }
    }
