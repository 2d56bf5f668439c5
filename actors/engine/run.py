"""A run: what one turn's agent loop has done so far, and what its next step is.

The actor stores a RunRecord after every step. `plan_next_step` reads the record and the
run's messages and says what comes next, so a run resumed on another host continues from
its last checkpoint and nothing else.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field

from actors.engine.agents import AgentDefinition
from actors.engine.messages import AssistantText, Message, ToolCall, ToolResult
from actors.engine.output import OutputSchema, check, correction, failure
from actors.engine.tool_set import HOST_KINDS, RunTool
from actors.engine.tool_sources import AgentRoute
from actors.engine.usage import Usage

RUN_SCHEMA_VERSION = 1

RunStatus = Literal[
    "queued", "running", "requires_action", "completed", "failed", "cancelled", "incomplete"
]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled", "incomplete"})


def _now() -> datetime:
    return datetime.now(UTC)


class ModelCallRecord(BaseModel):
    step: int
    vendor: str
    model: str
    usage: Usage
    latency_ms: float
    cost_usd: float
    # A call a lost host may have made before it died mid-step (its usage is lost with
    # it): recorded with the input tokens its request would have had, no output.
    estimated: bool = False
    # "summary": the call compacted the thread's older messages into a summary.
    purpose: Literal["turn", "summary"] = "turn"


class PendingAction(BaseModel):
    """What a waiting run needs from outside for one tool call: the caller's result of a
    client tool (`tool_result`), a person's decision (`approval`), the user's answer to a
    question (`input`), or another agent's answer (`agent_run`: threadhost answers it
    itself when the child run ends; a caller cannot)."""

    type: Literal["tool_result", "approval", "input", "agent_run"]
    call_id: str
    tool: str
    # The model's arguments, as JSON text.
    arguments: str
    # For `input`: the question asked.
    question: str | None = None
    # For `agent_run`: the agent asked, and the child thread its run goes on in.
    agent: str | None = None
    thread_id: str | None = None


# Actions a caller answers (the others threadhost answers itself).
CALLER_ACTIONS = frozenset({"tool_result", "approval", "input"})


class ParentLink(BaseModel):
    """Where a child run's answer goes: the run and tool call that asked for it."""

    thread_id: str
    run_id: str
    call_id: str
    # 1 for a child of a run that a caller started, 2 for its child, ...
    depth: int = 1


class ActingFor(BaseModel):
    """The end user a service runs the thread for: its tool calls carry who they are
    made on behalf of (and a signed assertion of it, where the host has a key)."""

    service: str
    user: str


class PushTarget(BaseModel):
    """Where an A2A client asked to hear of a task's (a run's) state changes: a URL the
    agent's webhook allows, and the token the client gave to know them by."""

    id: str
    url: str
    token: str | None = None


class ChildRun(BaseModel):
    """A run another agent made for one of this run's tool calls, once it ended."""

    call_id: str
    agent: str
    thread_id: str
    run_id: str
    status: str
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0


class _Event(BaseModel):
    """An event of a run's log: its sequence number in the run, what happened (the
    subclass, told apart by `type`), and when. `data` is what clients read as it is."""

    seq: int
    data: dict[str, Any] = Field(default_factory=dict)
    at: datetime = Field(default_factory=_now)


class RunCreated(_Event):
    type: Literal["run.created"] = "run.created"


class StatusChanged(_Event):
    type: Literal["run.status"] = "run.status"

    @property
    def status(self) -> RunStatus:
        return self.data["status"]

    @property
    def reason(self) -> str | None:
        return self.data.get("reason")


class StepCompleted(_Event):
    type: Literal["step.completed"] = "step.completed"

    @property
    def step(self) -> int:
        return self.data["step"]

    @property
    def kind(self) -> str:
        return self.data["kind"]


class ActionsSubmitted(_Event):
    """The caller's answers to a waiting run (tool results, approvals, input)."""

    type: Literal["actions.submitted"] = "actions.submitted"


class AgentRunEnded(_Event):
    """A child run ended: its answer is the result of the agent call that asked."""

    type: Literal["agent_run.ended"] = "agent_run.ended"


class ApprovalExpired(_Event):
    type: Literal["approval.expired"] = "approval.expired"


RunEvent = Annotated[
    RunCreated | StatusChanged | StepCompleted | ActionsSubmitted | AgentRunEnded | ApprovalExpired,
    Field(discriminator="type"),
]
AnEvent = TypeVar("AnEvent", bound=_Event)


class RunRecord(BaseModel):
    schema_version: int = RUN_SCHEMA_VERSION
    run_id: str
    thread_id: str
    status: RunStatus = "queued"
    agent: AgentDefinition
    # Index in the thread's history of the run's first message (the user's).
    first_message: int
    # Index just after its last message so far: a run's messages are contiguous, and a
    # later run's start after them. None in runs stored before it was kept.
    message_end: int | None = None
    steps: int = 0
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    model_calls: list[ModelCallRecord] = Field(default_factory=list)
    reason: str | None = None
    # The sequence number the next event gets.
    next_seq: int = 0
    # The W3C trace context of the request that started the run: its steps join that trace.
    traceparent: str | None = None
    # The user's message, kept while the run waits in the thread's queue, and where it
    # comes from (a follow-up's note comes from the system's side).
    input_text: str | None = None
    input_origin: Literal["user", "followup"] = "user"
    # The tools the run started with; None in runs stored before tool sets were kept
    # (their tools are the agent's, all run by the host).
    tools: list[RunTool] | None = None
    # While `requires_action`: what the run waits for, and when undecided approvals are
    # denied.
    required_action: list[PendingAction] = Field(default_factory=list)
    deadline: datetime | None = None
    # Calls a person approved that have not run yet.
    approved: list[str] = Field(default_factory=list)
    # A child run: the run that asked for it. Child runs that ended, for this run's calls
    # of agent tools (their usage and cost count in this run's).
    parent: ParentLink | None = None
    children: list[ChildRun] = Field(default_factory=list)
    # The end user its thread belongs to, when a service opened it for one.
    acting_for: ActingFor | None = None
    # The schema the turn asked its answer to match (None: the agent's, if it has one);
    # the validated answer once the run completed; whether an answer that did not match
    # was sent back to the model (once per run).
    output_schema: OutputSchema | None = None
    output: Any = None
    output_retried: bool = False
    # A2A push notifications asked for this run (its task).
    push: list[PushTarget] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)

    @property
    def active(self) -> bool:
        return self.status not in TERMINAL

    @property
    def answer_schema(self) -> OutputSchema | None:
        """The schema the run's answer must match: the turn's, else its agent's."""
        return self.output_schema or self.agent.output_schema

    def event(self, event_type: type[AnEvent], /, **data: Any) -> AnEvent:
        event = event_type(seq=self.next_seq, data=data)
        self.next_seq += 1
        return event

    def transition(self, status: RunStatus, reason: str | None = None, **data: Any) -> RunEvent:
        self.status, self.reason = status, reason
        return self.event(
            StatusChanged, status=status, **({"reason": reason} if reason else {}), **data
        )


class CallModel(BaseModel):
    kind: Literal["call_model"] = "call_model"
    # The last answer did not match the output schema: what the model is told (this
    # call's request only; the history keeps the answers).
    correction: str | None = None


class RunTools(BaseModel):
    kind: Literal["run_tools"] = "run_tools"
    calls: list[ToolCall]


class HandOff(RunTools):
    """A tool batch with a handoff call: the run passes to another agent."""


class UseFollowups(RunTools):
    """A tool batch with calls of follow-up tools, which act on the thread itself."""


class Pause(BaseModel):
    kind: Literal["pause"] = "pause"
    actions: list[PendingAction]


class Finish(BaseModel):
    kind: Literal["finish"] = "finish"
    status: RunStatus
    reason: str | None = None
    # A completed run's answer, validated against its output schema.
    output: Any = None


NextStep = CallModel | HandOff | UseFollowups | RunTools | Pause | Finish


def plan_next_step(run: RunRecord, run_messages: list[Message]) -> NextStep:
    answered = {m.call_id for m in run_messages if isinstance(m, ToolResult)}
    pending = [m for m in run_messages if isinstance(m, ToolCall) and m.call_id not in answered]
    if pending:
        waits = [action for call in pending if (action := _action_for(run, call)) is not None]
        waiting = {action.call_id for action in waits}
        runnable = [c for c in pending if c.call_id not in waiting]
        # The host's own calls first: the run then waits for the rest in one pause.
        return _tool_batch(run, runnable) if runnable else Pause(actions=waits)
    retry: str | None = None
    if run_messages and isinstance(run_messages[-1], AssistantText):
        said = _answered(run, run_messages[-1])
        if isinstance(said, Finish):
            return said
        retry = said
    limits = run.agent.limits
    if run.steps >= limits.max_steps:
        return Finish(status="incomplete", reason=f"max_steps: the run took {run.steps} steps")
    if limits.max_tokens is not None and run.usage.total_tokens >= limits.max_tokens:
        return Finish(
            status="incomplete",
            reason=f"token budget: {run.usage.total_tokens} of {limits.max_tokens} used",
        )
    if limits.max_cost_usd is not None and run.cost_usd >= limits.max_cost_usd:
        return Finish(
            status="incomplete",
            reason=f"cost budget: ${run.cost_usd:.4f} of ${limits.max_cost_usd} used",
        )
    return CallModel(correction=retry)


def _answered(run: RunRecord, answer: AssistantText) -> Finish | str:
    """A run whose model answered: done, unless the answer must match a schema and
    does not; then what the model is told when it is asked once more, or the run fails."""
    schema = run.answer_schema
    if schema is None:
        return Finish(status="completed")
    checked = check(schema, answer.text)
    if checked.valid:
        return Finish(status="completed", output=checked.value)
    if run.output_retried:
        return Finish(status="failed", reason=failure(checked))
    return correction(schema, checked)


def _tool_batch(run: RunRecord, calls: list[ToolCall]) -> RunTools:
    kinds = {t.kind for t in run.tools or [] if t.name in {c.name for c in calls}}
    if "handoff" in kinds:
        return HandOff(calls=calls)
    return UseFollowups(calls=calls) if "followup" in kinds else RunTools(calls=calls)


def calls_of_kind(run: RunRecord, calls: list[ToolCall], kind: str) -> list[ToolCall]:
    """The calls of tools of one kind (by the run's tool set)."""
    names = {t.name for t in run.tools or [] if t.kind == kind}
    return [call for call in calls if call.name in names]


def _action_for(run: RunRecord, call: ToolCall) -> PendingAction | None:
    """What the call waits for, or None if the host runs it now (a tool of the host's
    kinds, or a name the run has no tool for, which gets an error result)."""
    tool = next((t for t in run.tools or [] if t.name == call.name), None)
    if tool is None or (
        tool.kind in HOST_KINDS and (not tool.needs_approval or call.call_id in run.approved)
    ):
        return None
    if tool.kind == "client":
        return PendingAction(
            type="tool_result", call_id=call.call_id, tool=call.name, arguments=call.arguments
        )
    if tool.kind == "input":
        return PendingAction(
            type="input",
            call_id=call.call_id,
            tool=call.name,
            arguments=call.arguments,
            question=question_of(call.arguments),
        )
    if tool.kind == "agent" and isinstance(tool.route, AgentRoute):
        return PendingAction(
            type="agent_run",
            call_id=call.call_id,
            tool=call.name,
            arguments=call.arguments,
            agent=tool.route.agent,
            thread_id=child_thread_id(run.run_id, call.call_id),
        )
    return PendingAction(
        type="approval", call_id=call.call_id, tool=call.name, arguments=call.arguments
    )


def child_thread_id(run_id: str, call_id: str) -> str:
    """The child thread of one tool call: the same whichever host asks, however often."""
    return "th_" + hashlib.sha256(f"{run_id}/{call_id}".encode()).hexdigest()[:32]


def child_input(arguments: str) -> str:
    """What a child run is asked: the call's `input`, or its arguments as sent."""
    value = _string_argument(arguments, "input")
    return value if value is not None and value.strip() else arguments


def question_of(arguments: str) -> str:
    question = _string_argument(arguments, "question")
    return question if question is not None else arguments


def _string_argument(arguments: str, name: str) -> str | None:
    """A string argument of a call, if its arguments are a JSON object that has one."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return None
    value = parsed.get(name) if isinstance(parsed, dict) else None
    return value if isinstance(value, str) else None
