"""What happens in a thread, for other services: run transitions and follow-ups that came
due, as CloudEvents 1.0 (structured JSON), and webhooks that receive the same events as
signed POSTs.

The schema of `data` is versioned (`dataschema`, and `data.version`); docs/events.md
documents it. An event's `id` is the same every time the same thing is published (a run's
event is `<run_id>.<seq>`), so a subscriber or a webhook deduplicates on it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, cast

from pydantic import BaseModel

from actors.engine.followups import Followup
from actors.engine.run import ActingFor, RunCreated, RunEvent, RunRecord, StatusChanged

DATA_VERSION = 1
DATA_SCHEMA = "urn:threadhost:thread-event:v1"
# Run statuses other services hear of ("running" is not one: it says nothing new).
ANNOUNCED = frozenset({"requires_action", "completed", "failed", "cancelled", "incomplete"})
EventType = Literal[
    "threadhost.run.created",
    "threadhost.run.requires_action",
    "threadhost.run.completed",
    "threadhost.run.failed",
    "threadhost.run.cancelled",
    "threadhost.run.incomplete",
    "threadhost.followup.fired",
]


class ThreadEvent(BaseModel):
    """A CloudEvent 1.0, in its structured JSON form."""

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str
    type: EventType
    # "<thread_id>/<run_id>", or "<thread_id>/<followup_id>".
    subject: str
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str = DATA_SCHEMA
    data: dict[str, Any]


def _source(thread_id: str) -> str:
    return f"/threadhost/threads/{thread_id}"


def run_announcements(owner: str, run: RunRecord, events: list[RunEvent]) -> list[ThreadEvent]:
    """The events of a run's new log entries that other services hear of."""
    found = []
    for event in events:
        match event:
            case RunCreated():
                status: str | None = "created"
            case StatusChanged():
                status = event.status
            case _:
                status = None
        if status != "created" and status not in ANNOUNCED:
            continue
        data: dict[str, Any] = {
            "version": DATA_VERSION,
            "thread_id": run.thread_id,
            "run_id": run.run_id,
            "owner": owner,
            "agent": run.agent.name,
            "agent_version": run.agent.version,
            "status": status,
            "seq": event.seq,
        }
        if status == "created":
            data["origin"] = run.input_origin
            if run.parent is not None:
                data["parent"] = run.parent.model_dump()
        elif status == "requires_action":
            data["required_action"] = [
                a.model_dump(include={"type", "call_id", "tool"}) for a in run.required_action
            ]
        else:
            data.update(
                reason=event.data.get("reason"),
                usage=run.usage.model_dump(),
                cost_usd=run.cost_usd,
                steps=run.steps,
            )
            if "output" in event.data:  # a typed run's validated answer
                data["output"] = event.data["output"]
        found.append(
            ThreadEvent(
                id=f"{run.run_id}.{event.seq}",
                source=_source(run.thread_id),
                type=cast(EventType, f"threadhost.run.{status}"),
                subject=f"{run.thread_id}/{run.run_id}",
                time=event.at,
                data=data,
            )
        )
    return found


def followup_fired(
    thread_id: str,
    owner: str,
    agent: str,
    followup: Followup,
    run_id: str | None,
    skipped: str | None = None,
) -> ThreadEvent:
    """A follow-up came due: the run it started, or (`run_id` None) why it started none
    (`skipped`: it is put off, or waits for its next time)."""
    deferred = f".{followup.deferred}" if followup.deferred else ""
    return ThreadEvent(
        id=f"{followup.followup_id}.{followup.fired}{deferred}",
        source=_source(thread_id),
        type="threadhost.followup.fired",
        subject=f"{thread_id}/{followup.followup_id}",
        time=datetime.now(UTC),
        data={
            "version": DATA_VERSION,
            "thread_id": thread_id,
            "owner": owner,
            "agent": agent,
            "followup_id": followup.followup_id,
            "note": followup.note,
            "kind": followup.kind,
            "due_at": followup.due_at.isoformat(),
            "fired": followup.fired + 1,
            "run_id": run_id,
            "skipped": skipped,
        },
    )


class A2APush(BaseModel):
    """A delivery that is an A2A push notification: its body is the task's status update
    in the protocol's shape, and it carries the token its client gave."""

    config_id: str
    token: str | None = None


class WebhookDelivery(BaseModel):
    """An event on its way to one webhook (the message the host's deliverer gets)."""

    url: str
    agent: str
    secret: str
    key: str
    event: ThreadEvent
    a2a: A2APush | None = None
    # The end user the thread belongs to: the POST names them, with an assertion.
    acting_for: ActingFor | None = None
