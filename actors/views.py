"""What a thread's actor answers with: public views of its state, and its outcomes."""

from __future__ import annotations

from actors.engine.run import RunRecord
from actors.interface import Payload
from actors.state import ThreadRecord

NOT_FOUND: Payload = {"status": "not_found"}


def run_not_found(run_id: str) -> Payload:
    """The thread is the caller's, but has no such run."""
    return {"status": "run_not_found", "run_id": run_id}
PUBLIC_FIELDS = {"thread_id", "created_at", "updated_at", "message_count", "metadata", "agent",
                 "active_run", "usage", "cost_usd"}


def describe(record: ThreadRecord) -> Payload:
    return record.model_dump(mode="json", include=PUBLIC_FIELDS)


def run_view(run: RunRecord) -> Payload:
    view = run.model_dump(mode="json", exclude={"agent", "schema_version", "tools"})
    view["agent"] = {"name": run.agent.name, "version": run.agent.version,
                     "model": run.agent.model}
    view["tools"] = None if run.tools is None else [tool.name for tool in run.tools]
    return view


def owns(record: ThreadRecord, request: Payload) -> bool:
    return record.owner == request.get("owner", "anonymous")


def invalid(detail: str) -> Payload:
    return {"status": "invalid", "detail": detail}
