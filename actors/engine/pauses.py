"""Pauses: a run that waits for the outside world, and what resumes it.

A run pauses when the model calls a client tool, an approval-gated tool, `ask_user` or
another agent: it goes to `requires_action` with one pending action per call and holds
nothing while it waits. Another agent's answer comes from its child run
(`answer_from_child`); the caller answers the rest. A submission must answer every call
pending for the caller exactly once, each with the kind of answer it waits for; anything
else is refused and changes nothing. Answers become tool results in the history (a
denial with its reason, so the model reads it); an approved call runs as the run's next
step. An approval deadline that passes denies the undecided calls.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from actors.engine.messages import ToolResult
from actors.engine.run import (
    CALLER_ACTIONS,
    ActionsSubmitted,
    AgentRunEnded,
    ApprovalExpired,
    ChildRun,
    Pause,
    PendingAction,
    RunEvent,
    RunRecord,
)
from actors.engine.text import Text

MAX_TEXT = 100_000


def _type_required(schema: dict) -> None:
    """`type` has a default for Python callers, but picks the kind on the wire: a JSON
    body must name it, and the published schema says so."""
    schema["required"] = ["type", *schema.get("required", [])]


class _SubmissionBase(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_type_required)


class ToolOutput(_SubmissionBase):
    """The caller's result of a client tool call."""

    type: Literal["tool_result"] = "tool_result"
    call_id: Text = Field(max_length=200)
    output: Text = Field(max_length=MAX_TEXT)
    is_error: bool = False


class Approval(_SubmissionBase):
    """A person's decision on an approval-gated call; a denial's reason goes to the model."""

    type: Literal["approval"] = "approval"
    call_id: Text = Field(max_length=200)
    approved: bool
    reason: Text | None = Field(default=None, max_length=2000)


class Answer(_SubmissionBase):
    """The user's answer to a question the agent asked with `ask_user`."""

    type: Literal["input"] = "input"
    call_id: Text = Field(max_length=200)
    answer: Text = Field(max_length=MAX_TEXT)


Submission = Annotated[ToolOutput | Approval | Answer, Field(discriminator="type")]
submissions_adapter: TypeAdapter[list[Submission]] = TypeAdapter(list[Submission])


class NotWaiting(Exception):
    """The run is not waiting for anything (any more)."""


class InvalidSubmission(ValueError):
    """The submission does not answer the run's pending calls, exactly."""


def pause(run: RunRecord, decision: Pause, now: datetime) -> list[RunEvent]:
    run.required_action = decision.actions
    seconds = run.agent.approval_deadline_seconds
    waits_for_approval = any(a.type == "approval" for a in decision.actions)
    run.deadline = now + timedelta(seconds=seconds) if seconds and waits_for_approval else None
    return [
        run.transition(
            "requires_action",
            required_action=[a.model_dump(mode="json") for a in decision.actions],
            deadline=run.deadline.isoformat() if run.deadline else None,
        )
    ]


def submit(
    run: RunRecord, submissions: list[Submission], first_index: int
) -> tuple[list[ToolResult], list[RunEvent]]:
    """The tool results to append (at `first_index`) and the events; the run is running
    again. Raises NotWaiting or InvalidSubmission, with the run untouched."""
    if run.status != "requires_action":
        raise NotWaiting(f"the run is {run.status}, not waiting for anything")
    yours = [a for a in run.required_action if a.type in CALLER_ACTIONS]
    if not yours:
        raise NotWaiting("the run waits for other agents' answers, not for yours")
    _check(yours, submissions)
    pending = {a.call_id: a for a in yours}
    results = [
        result for s in submissions if (result := _result(pending[s.call_id], s)) is not None
    ]
    approved = [s.call_id for s in submissions if isinstance(s, Approval) and s.approved]
    run.approved += approved
    run.required_action = [a for a in run.required_action if a.type not in CALLER_ACTIONS]
    run.deadline = None
    events = [_results_event(run, ActionsSubmitted, results, first_index, approved=approved)]
    if not run.required_action:
        events.append(run.transition("running"))
    return results, events


def answer_from_child(
    run: RunRecord, child: ChildRun, answer: str | None, reason: str | None, first_index: int
) -> tuple[list[ToolResult], list[RunEvent]]:
    """The tool result of an agent call, from its child run that ended; the child's usage
    and cost count in this run's. Raises NotWaiting if the call no longer waits (a
    repeated answer: the first one counted)."""
    action = next(
        (a for a in run.required_action if a.type == "agent_run" and a.call_id == child.call_id),
        None,
    )
    if run.status != "requires_action" or action is None:
        raise NotWaiting(f"the run does not wait for an answer to {child.call_id}")
    if child.status == "completed" and answer is not None:
        result = ToolResult(call_id=child.call_id, name=action.tool, content=answer)
    else:
        result = ToolResult(
            call_id=child.call_id,
            name=action.tool,
            is_error=True,
            content=f"the agent {child.agent} did not answer: its run is "
            f"{child.status}" + (f" ({reason})" if reason else ""),
        )
    run.children.append(child)
    run.usage = run.usage + child.usage
    run.cost_usd = round(run.cost_usd + child.cost_usd, 8)
    run.required_action = [a for a in run.required_action if a is not action]
    events = [
        _results_event(
            run, AgentRunEnded, [result], first_index, child=child.model_dump(mode="json")
        )
    ]
    if not run.required_action:
        events.append(run.transition("running"))
    return [result], events


def expire_approvals(
    run: RunRecord, now: datetime, first_index: int
) -> tuple[list[ToolResult], list[RunEvent]]:
    """Denies the approvals still undecided once the deadline passed; the run runs on
    unless it also waits for something else. Nothing when the deadline is not due."""
    if run.status != "requires_action" or run.deadline is None or now < run.deadline:
        return [], []
    expired = [a for a in run.required_action if a.type == "approval"]
    results = [
        ToolResult(
            call_id=a.call_id,
            name=a.tool,
            is_error=True,
            content="Denied: nobody approved this call before its deadline.",
        )
        for a in expired
    ]
    run.required_action = [a for a in run.required_action if a.type != "approval"]
    run.deadline = None
    events = [
        _results_event(
            run, ApprovalExpired, results, first_index, call_ids=[a.call_id for a in expired]
        )
    ]
    if not run.required_action:
        events.append(run.transition("running"))
    return results, events


def _check(pending: list[PendingAction], submissions: list[Submission]) -> None:
    waiting = {a.call_id: a.type for a in pending}
    counts = Counter(s.call_id for s in submissions)
    problems = [f"{call_id} is answered {n} times" for call_id, n in counts.items() if n > 1]
    problems += [
        f"{s.call_id} is not a call this run waits for"
        for s in submissions
        if s.call_id not in waiting
    ]
    problems += [
        f"{s.call_id} waits for {waiting[s.call_id]}, not {s.type}"
        for s in submissions
        if s.call_id in waiting and waiting[s.call_id] != s.type
    ]
    problems += [
        f"{call_id} ({kind}) is not answered"
        for call_id, kind in waiting.items()
        if call_id not in counts
    ]
    if problems:
        raise InvalidSubmission("; ".join(dict.fromkeys(problems)))


def _result(action: PendingAction, submission: Submission) -> ToolResult | None:
    match submission:
        case ToolOutput(output=output, is_error=is_error):
            return ToolResult(
                call_id=action.call_id, name=action.tool, content=output, is_error=is_error
            )
        case Answer(answer=answer):
            return ToolResult(call_id=action.call_id, name=action.tool, content=answer)
        case Approval(approved=True):
            return None  # it runs as the next step
        case Approval(reason=reason):
            return ToolResult(
                call_id=action.call_id,
                name=action.tool,
                is_error=True,
                content="Denied by the user" + (f": {reason}" if reason else "."),
            )


def _results_event(
    run: RunRecord,
    kind: type[ActionsSubmitted | AgentRunEnded | ApprovalExpired],
    results: list[ToolResult],
    first_index: int,
    **data: object,
) -> RunEvent:
    return run.event(
        kind,
        first_index=first_index,
        messages=[r.model_dump(mode="json") for r in results],
        **data,
    )
