"""The public API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from actors.engine.messages import Message
from actors.engine.output import OutputSchema
from actors.engine.pauses import Submission
from actors.engine.text import Text
from actors.engine.tool_set import ClientTool
from actors.threads.contract import RunView, ThreadEventsAnswer
from threadhost.common.ids import ID_PATTERN, ThreadKey

# Thread ids travel in URLs and actor keys: one alphabet for every id (threadhost/common/ids.py).
THREAD_ID_PATTERN = ID_PATTERN


class CreateThread(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"agent": "support", "metadata": {"user": "u-42"}}]},
    )
    metadata: dict[Text, Text] = Field(
        default_factory=dict, max_length=16, examples=[{"user": "u-42"}]
    )
    agent: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", examples=["support"]
    )
    # A follow-up that comes due while a run is going on: run next, be skipped, or cancel
    # the run and take its place.
    on_active: Literal["enqueue", "reject", "interrupt"] = "enqueue"
    # Where the thread's events go as signed POSTs; it must start with one of the URLs
    # its agent's `webhook.allowed_urls` lists.
    webhook_url: Text | None = Field(
        default=None, max_length=2000, examples=["https://crm.example.com/hooks/threads"]
    )
    # The caller's own key: the caller's thread of this key, made by the first call that
    # names it and found by every other (`key:<key>` wherever a thread id is taken).
    key: ThreadKey | None = None


class PostMessage(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"content": "Where is my order 1001?"},
                {"content": "Actually, order 1002.", "mode": "stream", "on_active": "interrupt"},
            ]
        },
    )
    content: Text = Field(examples=["Where is my order 1001?"])
    # This turn's model, as a recipe; the thread's agent decides when absent.
    model: Text | None = Field(
        default=None, max_length=200, examples=["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"]
    )
    # wait: answer when the run ends; stream: server-sent events as it goes;
    # background: 202 at once, with the run's URL.
    mode: Literal["wait", "stream", "background"] = "wait"
    # While the thread has a run going: enqueue this message to run next, reject it (409),
    # or interrupt (cancel) the active run.
    on_active: Literal["enqueue", "reject", "interrupt"] = "enqueue"
    # Tools the caller executes itself: when the model calls one, the run waits
    # (requires_action) until the caller submits the result.
    client_tools: list[ClientTool] = Field(default_factory=list, max_length=64)
    # The agent's tools this turn (and its run, even after a pause) may not use.
    disabled_tools: list[Text] = Field(default_factory=list, max_length=64)
    # The JSON schema this turn's final answer must match (instead of the agent's): the
    # run's `output` is the validated value; an answer that does not match is retried
    # once, then the run fails saying why.
    output_schema: OutputSchema | None = None


class ForkThread(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"message_index": 4}, {"message_index": 0}]},
    )
    # The fork's history is the thread's messages before this index (0 to its
    # message count: at a user message, to send it again differently).
    message_index: int = Field(ge=0, le=10**9)
    # The fork's metadata (the thread's own when absent).
    metadata: dict[Text, Text] | None = Field(default=None, max_length=16)


class ResumeRun(BaseModel):
    """Answers to everything a waiting run waits for: each pending call exactly once."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"actions": [{"type": "approval", "call_id": "call_3_1", "approved": True}]},
                {
                    "actions": [
                        {
                            "type": "approval",
                            "call_id": "call_3_1",
                            "approved": False,
                            "reason": "refund first",
                        },
                        {"type": "tool_result", "call_id": "call_3_2", "output": "Berlin"},
                        {"type": "input", "call_id": "call_3_3", "answer": "Order 1002"},
                    ],
                    "mode": "stream",
                },
            ]
        },
    )
    actions: list[Submission] = Field(min_length=1, max_length=64)
    # As for a message: wait for the run to stop, stream its events, or answer at once.
    mode: Literal["wait", "stream", "background"] = "wait"


class ThreadSummaryView(BaseModel):
    id: str
    agent: str
    created_at: datetime
    metadata: dict[str, str]
    # The caller's key for the thread, if it was opened by one.
    key: str | None = None


class EndUsersView(BaseModel):
    end_users: list[str]
    next_offset: int | None


class ThreadListView(BaseModel):
    threads: list[ThreadSummaryView]
    next_offset: int | None


Role = Literal["user", "assistant", "tool", "system"]


class MessageView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "index": 2,
                    "kind": "tool_call",
                    "role": "assistant",
                    "content": '{"order_id": "1001"}',
                    "created_at": "2026-11-22T15:32:09Z",
                    "model": "gpt-4o-mini",
                    "tool_name": "query_order",
                    "call_id": "call_1",
                }
            ]
        }
    )
    index: int
    kind: Literal["user_text", "assistant_text", "tool_call", "tool_result"]
    # "system" for a follow-up's note, which starts a run the user did not.
    role: Role
    # The text; for a tool call its JSON arguments, for a tool result what the tool returned.
    content: str
    created_at: datetime
    model: str | None = None
    tool_name: str | None = None
    call_id: str | None = None
    is_error: bool | None = None
    # The agent that wrote an assistant message (a handoff changes it within a run).
    agent: str | None = None
    # Where a user_text comes from: the user, or a follow-up that came due.
    origin: Literal["user", "followup"] | None = None

    @classmethod
    def of(cls, index: int, message: Message) -> MessageView:
        data = message.model_dump()
        kind = data["kind"]
        role: Role = "assistant"
        if data.get("origin") == "followup":
            role = "system"
        elif kind in ("user_text", "tool_result"):
            role = "user" if kind == "user_text" else "tool"
        content = data.get("text", data.get("arguments", data.get("content", "")))
        return cls(
            index=index,
            kind=kind,
            role=role,
            content=content,
            created_at=data["at"],
            model=data.get("model") or None,
            tool_name=data.get("name"),
            call_id=data.get("call_id"),
            is_error=data.get("is_error"),
            agent=data.get("agent") or None,
            origin=data.get("origin"),
        )


class TurnView(BaseModel):
    thread_id: str
    run: RunView
    # The run's last assistant text so far; None if it has none.
    reply: str | None
    messages: list[MessageView]
    message_count: int


class AcceptedView(BaseModel):
    """A run that goes on after the answer: follow `url` (also in Location)."""

    run: RunView
    url: str


class RunsView(BaseModel):
    runs: list[RunView]
    total: int


class EventsView(BaseModel):
    run: RunView
    events: list[dict[str, Any]]


class ThreadEventsView(BaseModel):
    """A page of a thread's events, run after run (GET /v1/threads/{id}/events)."""

    # Each run event with its `run_id` and its `id` (`<run_id>.<seq>`).
    events: list[dict[str, Any]]
    # Where the next page starts (`after`): the last event these cover.
    cursor: str
    more: bool

    @classmethod
    def of(cls, answer: ThreadEventsAnswer) -> ThreadEventsView:
        return cls(
            events=[
                {"id": item.id, "run_id": item.run_id, **item.event.model_dump(mode="json")}
                for item in answer.events
            ],
            cursor=answer.cursor,
            more=answer.more,
        )


class HistoryView(BaseModel):
    thread_id: str
    messages: list[MessageView]
    message_count: int
    next_offset: int | None


class ScheduleFollowup(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"when": "cron 0 9 * * *", "note": "Daily check-in: ask how the migration goes."},
                {"when": "PT2H", "note": "Check whether order 1001 has shipped."},
            ]
        },
    )
    # An instant with its offset (2026-12-01T09:00:00+01:00), a delay as an ISO 8601
    # duration (PT2H), "every <duration>" (every P1D), or "cron <five fields, UTC>".
    when: Text = Field(
        max_length=200,
        examples=["2026-12-01T09:00:00+01:00", "PT2H", "every P1D", "cron 0 9 * * 1-5"],
    )
    # What the agent is to do then: its run starts with this as its input.
    note: Text = Field(max_length=4000)


class FollowupView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "followup_id": "fu_3f2a9c1d0b7e4a55",
                    "note": "Check whether order 1001 has shipped.",
                    "when": "PT2H",
                    "kind": "once",
                    "due_at": "2026-11-23T17:32:09Z",
                    "created_by": "agent",
                    "created_at": "2026-11-23T15:32:09Z",
                    "fired": 0,
                }
            ]
        }
    )
    followup_id: str
    note: str
    when: str
    kind: Literal["once", "every", "cron"]
    due_at: datetime
    created_by: Literal["agent", "api"]
    created_at: datetime
    # How many times it came due so far (a recurring one goes on).
    fired: int


class FollowupListView(BaseModel):
    thread_id: str
    followups: list[FollowupView]
