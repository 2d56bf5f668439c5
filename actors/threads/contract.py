"""The contract between a thread's callers (the gateway, other services) and its actor.

Each actor method takes one request model and answers with one of its outcomes, told
apart by `outcome`. A refusal names its HTTP problem here, once: callers raise it, they
never map status strings of their own. Both sides import this module; nothing in it
needs Dapr.

    Thread method   request           answers
    method          request           answers
    Create          CreateThread      ThreadAnswer | Invalid | NotFound (another owner's id)
    Describe        DescribeThread    ThreadAnswer | NotFound
    Delete          DeleteThread      Done | NotFound
    PostMessage     PostMessage       RunAnswer | NotFound | Invalid | Busy
    ResumeRun       ResumeRun         RunAnswer | NotFound | RunNotFound | Invalid | NotWaiting
    CancelRun       CancelRun         RunAnswer | NotFound | RunNotFound
    GetRun          GetRun            RunAnswer | NotFound | RunNotFound
    ListRuns        ListRuns          RunsAnswer | NotFound
    ReadHistory     ReadHistory       HistoryAnswer | NotFound
    ImportHistory   ImportHistory     ThreadAnswer | NotFound | Busy
    Fork            ForkThread        ThreadAnswer | NotFound | Invalid    (to the new thread)
    ConfigurePush   ConfigurePush     RunAnswer | NotFound | RunNotFound | Invalid
    ScheduleFollowup ScheduleFollowup FollowupAnswer | NotFound | Invalid | TooManyFollowups
    ListFollowups   ListFollowups     FollowupsAnswer | NotFound
    CancelFollowup  CancelFollowup    Done | NotFound | FollowupNotFound
    StartChildRun   StartChildRun     ChildRunAnswer | Invalid | NotFound  (thread to thread)
    ChildRunEnded   ChildRunEnded     Done                                 (thread to thread)

    ThreadReader method (reads of what a thread committed, past its actor's lock)
    ReadRun         ReadRun           RunAnswer | NotFound | RunNotFound
    ReadEvents      ReadEvents        EventsAnswer | NotFound | RunNotFound
    ReadThreadEvents ReadThreadEvents ThreadEventsAnswer | NotFound | RunNotFound

Each request class carries its method's name and its answers' adapter."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from actors.engine.followups import Followup
from actors.engine.messages import Message
from actors.engine.output import OutputSchema
from actors.engine.pauses import Submission
from actors.engine.run import (
    CALLER_ACTIONS,
    TERMINAL,
    ChildRun,
    ParentLink,
    PendingAction,
    RunEvent,
    RunRecord,
)
from actors.engine.text import Text
from actors.engine.tool_set import ClientTool
from actors.threads.state import ForkMark, ThreadRecord
from threadhost.common.ids import Id, ThreadKey
from threadhost.common.owners import end_user_of

# Who answers: the SDK names an actor type after its implementing class
# (actors/dapr_host/thread_actor.py Thread, actors/dapr_host/reader_actor.py ThreadReader).
THREAD_ACTOR, READER_ACTOR = "Thread", "ThreadReader"
Success = TypeVar("Success", bound=BaseModel)
OnActive = Literal["enqueue", "reject", "interrupt"]
# A run in one of these has stopped running: ended, or waiting for an action. Whoever
# waits for a turn is done waiting.
STOPPED = TERMINAL | {"requires_action"}
# Idempotency keys the gateway makes for turns whose caller sent none.
GATEWAY_KEY_PREFIX = "turn:"


# --- views -----------------------------------------------------------------------------


class ThreadView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "th_7e9df6a3857a414db0471772481bc2c2",
                    "agent": "support",
                    "created_at": "2026-11-22T15:31:39Z",
                    "updated_at": "2026-11-22T15:32:10Z",
                    "message_count": 7,
                    "metadata": {"user": "u-42"},
                    "active_run": None,
                    "usage": {
                        "input_tokens": 24,
                        "output_tokens": 21,
                        "cached_tokens": 0,
                        "reasoning_tokens": 0,
                    },
                    "cost_usd": 0.0,
                }
            ]
        }
    )
    id: str
    agent: str
    created_at: datetime
    updated_at: datetime
    message_count: int
    metadata: dict[str, str]
    active_run: str | None = None
    # The caller's key for the thread, if it was opened by one.
    key: str | None = None
    # The end user a service opened it for (threadhost-end-user); None otherwise.
    end_user: str | None = None
    usage: dict[str, int]
    cost_usd: float
    # A fork: the thread it was made from, and the message index it was forked at.
    forked_from: ForkMark | None = None

    @classmethod
    def of(cls, record: ThreadRecord) -> ThreadView:
        return cls(
            id=record.thread_id,
            agent=record.agent,
            created_at=record.created_at,
            updated_at=record.updated_at,
            message_count=record.message_count,
            metadata=record.metadata,
            active_run=record.active_run,
            key=record.key,
            end_user=end_user.user if (end_user := end_user_of(record.owner)) else None,
            usage=record.usage.model_dump(),
            cost_usd=record.cost_usd,
            forked_from=record.forked_from,
        )


class RunView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "run_id": "run_be1d8c8ac2864a3683494bb8432c1aaa",
                    "thread_id": "th_7e9df6a3857a414db0471772481bc2c2",
                    "status": "completed",
                    "reason": None,
                    "agent": {"name": "support", "version": 1, "model": "openai:gpt-4o-mini"},
                    "steps": 5,
                    "usage": {
                        "input_tokens": 812,
                        "output_tokens": 64,
                        "cached_tokens": 512,
                        "reasoning_tokens": 0,
                    },
                    "cost_usd": 0.000161,
                    "first_message": 0,
                    "next_seq": 8,
                    "created_at": "2026-11-22T15:32:08Z",
                    "updated_at": "2026-11-22T15:32:11Z",
                    "model_calls": [],
                }
            ]
        }
    )
    run_id: str
    thread_id: str
    status: str
    reason: str | None = None
    agent: dict[str, Any]
    steps: int
    usage: dict[str, int]
    cost_usd: float
    first_message: int
    next_seq: int
    created_at: datetime
    updated_at: datetime
    model_calls: list[dict[str, Any]]
    # The tools the run may call (fixed when it was created).
    tools: list[str] | None = None
    # While the run is `requires_action`: what it waits for, and when undecided
    # approvals are denied.
    required_action: list[PendingAction] = Field(default_factory=list)
    deadline: datetime | None = None
    # A child run: the run and tool call it answers. Child runs of this run that ended.
    parent: ParentLink | None = None
    children: list[ChildRun] = Field(default_factory=list)
    # A2A push notification targets (their tokens are not shown).
    push: list[dict[str, str]] = Field(default_factory=list)
    # The schema the run's answer must match (the turn's, or its agent's), and once the
    # run completed, its answer as the JSON value it validated to.
    output_schema: OutputSchema | None = None
    output: Any = None

    @classmethod
    def of(cls, run: RunRecord) -> RunView:
        return cls(
            run_id=run.run_id,
            thread_id=run.thread_id,
            status=run.status,
            reason=run.reason,
            agent={"name": run.agent.name, "version": run.agent.version, "model": run.agent.model},
            steps=run.steps,
            usage=run.usage.model_dump(),
            cost_usd=run.cost_usd,
            first_message=run.first_message,
            next_seq=run.next_seq,
            created_at=run.created_at,
            updated_at=run.updated_at,
            model_calls=[call.model_dump(mode="json") for call in run.model_calls],
            tools=None if run.tools is None else [tool.name for tool in run.tools],
            required_action=run.required_action,
            deadline=run.deadline,
            parent=run.parent,
            children=run.children,
            output_schema=run.answer_schema,
            output=run.output,
            push=[{"id": t.id, "url": t.url} for t in run.push],
        )

    @property
    def stopped(self) -> bool:
        """Ended, or waiting for an action of the caller: a waiting caller's turn is over
        (a run that waits only for other agents' answers goes on by itself)."""
        if self.status == "requires_action":
            return any(action.type in CALLER_ACTIONS for action in self.required_action)
        return self.status in STOPPED


# --- answers ---------------------------------------------------------------------------


class ThreadAnswer(BaseModel):
    outcome: Literal["thread"] = "thread"
    thread: ThreadView
    # Made by this call (a keyed open finds the thread made before).
    created: bool = False


class RunAnswer(BaseModel):
    outcome: Literal["run"] = "run"
    run: RunView
    # The run's first event that this call caused (a stream starts there).
    first_seq: int = 0
    # An idempotency key seen before: the run it started, not a new one.
    replayed: bool = False
    # Once the run has stopped, when asked for: its messages, and the thread's length.
    messages: list[Message] | None = None
    message_count: int | None = None


class RunsAnswer(BaseModel):
    outcome: Literal["runs"] = "runs"
    runs: list[RunView]
    total: int


class HistoryAnswer(BaseModel):
    outcome: Literal["history"] = "history"
    thread: ThreadView
    messages: list[Message]


class ChildRunAnswer(BaseModel):
    """A child thread's run for a tool call; with its answer once it completed."""

    outcome: Literal["child_run"] = "child_run"
    run: RunView
    answer: str | None = None


class FollowupAnswer(BaseModel):
    outcome: Literal["followup"] = "followup"
    followup: Followup


class FollowupsAnswer(BaseModel):
    outcome: Literal["followups"] = "followups"
    followups: list[Followup]


class EventsAnswer(BaseModel):
    """A run and its committed events, read past the thread's actor (ThreadReader)."""

    outcome: Literal["events"] = "events"
    run: RunView
    events: list[RunEvent]


class RunEventOf(BaseModel):
    """An event of one of the thread's runs."""

    run_id: str
    event: RunEvent

    @property
    def id(self) -> str:
        return f"{self.run_id}.{self.event.seq}"


class ThreadEventsAnswer(BaseModel):
    """The events of a thread's runs in order, read past the thread's actor: run after
    run as they were created, each run's events in their order, a run's only once every
    run before it has ended (a queued run is told of after the run it waited for)."""

    outcome: Literal["thread_events"] = "thread_events"
    events: list[RunEventOf]
    # The last event these cover, `<run_id>.<seq>` (the next read goes on after it); ""
    # before the thread's first run.
    cursor: str
    # The limit cut the read short: read on from the cursor.
    more: bool = False


class Done(BaseModel):
    outcome: Literal["done"] = "done"


class Refusal(BaseModel):
    """An answer that is not a success; callers raise it as this HTTP problem."""

    http_status: ClassVar[int]
    problem_type: ClassVar[str]
    title: ClassVar[str]
    detail: str = ""

    def extensions(self) -> dict[str, Any]:
        """Members of the problem document beyond the standard ones."""
        return self.model_dump(exclude={"outcome", "detail"})


class NotFound(Refusal):
    """No such thread, or not the caller's (the same answer: nothing leaks)."""

    http_status, problem_type, title = 404, "thread-not-found", "Thread not found"
    outcome: Literal["not_found"] = "not_found"

    @classmethod
    def of(cls, thread_id: str) -> NotFound:
        return cls(detail=f"no thread with id {thread_id!r}")


class RunNotFound(Refusal):
    http_status, problem_type, title = 404, "run-not-found", "Run not found"
    outcome: Literal["run_not_found"] = "run_not_found"
    run_id: str

    @classmethod
    def of(cls, thread_id: str, run_id: str) -> RunNotFound:
        return cls(run_id=run_id, detail=f"thread {thread_id!r} has no run with id {run_id!r}")


class Invalid(Refusal):
    http_status, problem_type, title = 422, "invalid-request", "Invalid request"
    outcome: Literal["invalid"] = "invalid"


class Busy(Refusal):
    http_status, problem_type, title = 409, "thread-busy", "The thread has a run in progress"
    outcome: Literal["busy"] = "busy"
    detail: str = "wait for it to end, or cancel it"
    run_id: str


class NotWaiting(Refusal):
    http_status, problem_type, title = 409, "run-not-waiting", "The run is not waiting"
    outcome: Literal["not_waiting"] = "not_waiting"


class FollowupNotFound(Refusal):
    http_status, problem_type, title = 404, "followup-not-found", "Follow-up not found"
    outcome: Literal["followup_not_found"] = "followup_not_found"


class TooManyFollowups(Refusal):
    http_status, problem_type, title = 409, "too-many-followups", "Too many follow-ups"
    outcome: Literal["too_many_followups"] = "too_many_followups"


def answers_of(*outcomes: type[BaseModel]) -> TypeAdapter[Any]:
    union = outcomes[0]
    for outcome in outcomes[1:]:
        union = union | outcome  # type: ignore[assignment]
    return TypeAdapter(Annotated[union, Field(discriminator="outcome")])


# --- requests, each with the answers its method may give ------------------------------


class Request(BaseModel, Generic[Success]):
    """Every request names its owner, the caller the gateway authenticated (a thread
    answers NotFound to anyone else). `Success` is what its method answers when it
    refuses nothing."""

    model_config = ConfigDict(extra="forbid")
    # The actor type that answers it.
    actor: ClassVar[str] = THREAD_ACTOR
    method: ClassVar[str]
    answers: ClassVar[TypeAdapter[Any]]
    # Whether sending it again, after a call whose outcome is unknown, does nothing twice.
    repeatable: ClassVar[bool] = True
    owner: str = "anonymous"

    def safe_to_repeat(self) -> bool:
        return self.repeatable


class CreateThread(Request[ThreadAnswer]):
    method, answers = "Create", answers_of(ThreadAnswer, Invalid, NotFound)
    agent: str | None = None
    metadata: dict[Text, Text] = Field(default_factory=dict)
    # What a follow-up that comes due while a run is active does.
    on_active: OnActive = "enqueue"
    # Where the thread's events go as signed POSTs (a URL its agent's webhook allows).
    webhook_url: str | None = Field(default=None, max_length=2000)
    # The caller's key, kept on the thread (its id was made of it).
    key: ThreadKey | None = None


class ConfigurePush(Request[RunAnswer]):
    """Sets (or with `remove`, removes) an A2A push notification target of a run: its
    state changes go to `url` (within the agent's webhook.allowed_urls), signed, with
    `token`. A run that has already stopped tells the new target at once."""

    method, answers = "ConfigurePush", answers_of(RunAnswer, NotFound, RunNotFound, Invalid)
    run_id: str
    config_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: str | None = Field(default=None, max_length=2000)
    token: Text | None = Field(default=None, max_length=500)
    remove: bool = False


class ForkThread(Request[ThreadAnswer]):
    """To the new thread: become a fork of `source`, with its messages before
    `message_index` as history and no run. Made once: a repeat finds it."""

    method, answers = "Fork", answers_of(ThreadAnswer, NotFound, Invalid)
    source: Id
    message_index: int = Field(ge=0)
    metadata: dict[Text, Text] = Field(default_factory=dict)


class DescribeThread(Request[ThreadAnswer]):
    method, answers = "Describe", answers_of(ThreadAnswer, NotFound)


class DeleteThread(Request[Done]):
    method, answers = "Delete", answers_of(Done, NotFound)
    repeatable = False  # a second call after a first that did it answers NotFound


class PostMessage(Request[RunAnswer]):
    method, answers = "PostMessage", answers_of(RunAnswer, NotFound, Invalid, Busy)
    text: Text
    model: Text | None = None
    on_active: OnActive = "enqueue"
    # The gateway sends one with every turn (the caller's, or its own), so a call that
    # daprd retries on another host finds the run the first attempt started.
    idempotency_key: str | None = Field(default=None, max_length=200)
    client_tools: list[ClientTool] = Field(default_factory=list)
    disabled_tools: list[Text] = Field(default_factory=list)
    # The schema this turn's answer must match, instead of the agent's (if any).
    output_schema: OutputSchema | None = None
    # The caller waits for the run: its first steps are taken inside this call, and a run
    # that stops within them comes back with its messages.
    wait: bool = False
    # Set by a thread that asks this one's agent (StartChildRun), never by the gateway.
    parent: ParentLink | None = None

    def safe_to_repeat(self) -> bool:
        """With its key, a repeat finds the run the first call started."""
        return self.idempotency_key is not None

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text must not be blank")
        return text


class ResumeRun(Request[RunAnswer]):
    method = "ResumeRun"
    answers = answers_of(RunAnswer, NotFound, RunNotFound, Invalid, NotWaiting)
    repeatable = False  # after one that took, a repeat finds the run not waiting
    # None: the thread's active run (what an OpenAI door's tool results answer).
    run_id: str | None
    actions: list[Submission]
    wait: bool = False
    # With a key, a repeat finds the run the first call resumed.
    idempotency_key: str | None = Field(default=None, max_length=200)

    def safe_to_repeat(self) -> bool:
        return self.idempotency_key is not None


class CancelRun(Request[RunAnswer]):
    method, answers = "CancelRun", answers_of(RunAnswer, NotFound, RunNotFound)
    run_id: str


class GetRun(Request[RunAnswer]):
    method, answers = "GetRun", answers_of(RunAnswer, NotFound, RunNotFound)
    run_id: str
    # Its messages too, once it has stopped running.
    with_messages: bool = False


class ListRuns(Request[RunsAnswer]):
    method, answers = "ListRuns", answers_of(RunsAnswer, NotFound)
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=20, ge=1)


class ReadHistory(Request[HistoryAnswer]):
    method, answers = "ReadHistory", answers_of(HistoryAnswer, NotFound)
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1)


class StartChildRun(Request[ChildRunAnswer]):
    """From a thread whose run called an agent tool: a run of `agent` on this (child)
    thread, created with the owner's thread if new. Repeatable: the parent's run and call
    name the run, so a repeat answers with the one the first call started."""

    method, answers = "StartChildRun", answers_of(ChildRunAnswer, Invalid, NotFound)
    agent: str
    text: Text
    parent: ParentLink

    @property
    def idempotency_key(self) -> str:
        return f"child:{self.parent.run_id}:{self.parent.call_id}"


class ChildRunEnded(Request[Done]):
    """To the parent thread: a child run for one of its run's calls ended."""

    method, answers = "ChildRunEnded", answers_of(Done)
    run_id: str
    child: ChildRun
    answer: str | None = None
    reason: str | None = None


class ImportHistory(Request[ThreadAnswer]):
    """Messages a caller had before the thread existed (an OpenAI client's history),
    appended as they are, with no run. Not repeatable: a repeat would append them twice."""

    method, answers = "ImportHistory", answers_of(ThreadAnswer, NotFound, Busy)
    repeatable = False
    messages: list[Message] = Field(max_length=10_000)
    # With a key, a repeat appends nothing: the thread remembers the keys it imported.
    idempotency_key: str | None = Field(default=None, max_length=200)

    def safe_to_repeat(self) -> bool:
        return self.idempotency_key is not None


class ScheduleFollowup(Request[FollowupAnswer]):
    """A follow-up on the thread, from its owner (the agent schedules its own with the
    `schedule_followup` tool). Not repeatable: a repeat would schedule a second."""

    method = "ScheduleFollowup"
    answers = answers_of(FollowupAnswer, NotFound, Invalid, TooManyFollowups)
    repeatable = False
    when: Text = Field(max_length=200)
    note: Text


class ListFollowups(Request[FollowupsAnswer]):
    method, answers = "ListFollowups", answers_of(FollowupsAnswer, NotFound)


class CancelFollowup(Request[Done]):
    method, answers = "CancelFollowup", answers_of(Done, NotFound, FollowupNotFound)
    followup_id: str = Field(max_length=100)


class WatchdogFired(Request[Done]):
    """The run watchdog's job fired (actors/dapr_host/watchdog.py): a run left running goes on."""

    method, answers = "WatchdogFired", answers_of(Done)


class ReadRun(Request[RunAnswer]):
    actor = READER_ACTOR
    method, answers = "ReadRun", answers_of(RunAnswer, NotFound, RunNotFound)
    run_id: str


class ReadEvents(Request[EventsAnswer]):
    actor = READER_ACTOR
    method, answers = "ReadEvents", answers_of(EventsAnswer, NotFound, RunNotFound)
    run_id: str
    after: int = Field(default=-1, ge=-1)
    limit: int = Field(default=1000, ge=1, le=1000)


# Where a thread's events are read from: after an event (`<run_id>.<seq>`), or "" (from
# the thread's first run).
THREAD_EVENT_CURSOR = r"^([A-Za-z0-9_-]{1,64}\.(-1|[0-9]{1,9}))?$"


class ReadThreadEvents(Request[ThreadEventsAnswer]):
    actor = READER_ACTOR
    method, answers = (
        "ReadThreadEvents",
        answers_of(ThreadEventsAnswer, NotFound, RunNotFound),
    )
    # None: from now, that is from the start of the run going on, if there is one.
    after: str | None = Field(default=None, pattern=THREAD_EVENT_CURSOR)
    limit: int = Field(default=500, ge=1, le=1000)


def validation_detail(exc: ValidationError) -> str:
    """The first problem of a request that did not match the contract, naming its field."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]
