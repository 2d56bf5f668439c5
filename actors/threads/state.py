"""A thread's stored state: one small record plus its history in fixed-size pages.

A turn rewrites the record and the one or two pages its messages land in, never the
whole history, so what a turn writes stays bounded however long the thread grows.
Every stored document carries `schema_version`; readers refuse versions they do not know.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from actors.engine.context import ContextCount, SummaryMark
from actors.engine.followups import Followup
from actors.engine.messages import Message
from actors.engine.run import RunEvent
from actors.engine.usage import Usage

SCHEMA_VERSION = 1
RECORD_KEY = "thread"


class UnknownSchemaVersion(ValueError):
    pass


class ForkMark(BaseModel):
    """Where a forked thread came from: its history is the source's messages before
    `message_index`, copied when it was made."""

    thread_id: str
    message_index: int


class ThreadRecord(BaseModel):
    schema_version: int = SCHEMA_VERSION
    thread_id: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    message_count: int = 0
    # Kept per thread: changing the default later must not reshuffle stored pages.
    page_size: int
    metadata: dict[str, str] = Field(default_factory=dict)
    # Who may see and use the thread (threadhost/common/owners.py).
    owner: str = "anonymous"
    # The owner's own key for it, when it was opened by one (its id is made of it).
    key: str | None = None
    agent: str = "assistant"
    # The run in progress (or waiting); None when the thread is idle.
    active_run: str | None = None
    # Runs waiting for the active one to end, oldest first (messages sent meanwhile).
    queue: list[str] = Field(default_factory=list)
    # Idempotency-Key -> run, for the most recent keys (IDEMPOTENCY_KEYS of them).
    idempotency: dict[str, str] = Field(default_factory=dict)
    # Runs ever created (queued ones too), listed in RUNS_PER_PAGE pages under runs_key.
    runs_created: int = 0
    # Totals of the thread's ended runs.
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    # Retention (the agent's, when the thread was created): the thread is gone this long
    # after its last activity (`active_at`: the last write). None keeps it.
    retention_seconds: int | None = None
    active_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # When every key's time-to-live was last renewed (see retention_slack).
    ttl_renewed_at: datetime | None = None
    # The latest summary of the thread's older messages (its text is under summary_key),
    # and the vendor's count of the last request (engine/context.py).
    summary: SummaryMark | None = None
    context_count: ContextCount | None = None
    # Follow-ups scheduled on the thread, each with a durable reminder of its own; and
    # what happens when one comes due while a run is active.
    followups: list[Followup] = Field(default_factory=list)
    on_active: Literal["enqueue", "reject", "interrupt"] = "enqueue"
    # Where this thread's events go as signed POSTs, besides its agent's own webhook.
    webhook_url: str | None = None
    # Announcements (thread events and their webhook deliveries) written by a commit and
    # maybe not sent yet: each under announcement_key (actors/threads/announcements.py).
    outbox: list[str] = Field(default_factory=list)
    # Set when the thread was made as a fork of another.
    forked_from: ForkMark | None = None

    def expired(self, now: datetime) -> bool:
        return self.retention_seconds is not None and now >= self.active_at + timedelta(
            seconds=self.retention_seconds
        )

    def tail_page_index(self) -> int:
        return max(self.message_count - 1, 0) // self.page_size


IDEMPOTENCY_KEYS = 100


def retention_slack(retention_seconds: int) -> int:
    """How long past its retention a thread's last key may outlive it. Every key is
    written with a time-to-live of retention + slack, and all keys are renewed whenever
    the last renewal is a slack old: so after any activity every key lives at least the
    retention, and none lives longer than retention + slack after the last one."""
    return max(1, retention_seconds // 10)


class HistoryPage(BaseModel):
    schema_version: int = SCHEMA_VERSION
    index: int
    messages: list[Message] = Field(default_factory=list)


def page_key(index: int) -> str:
    return f"history.{index}"


def run_key(run_id: str) -> str:
    return f"run.{run_id}"


def announcement_key(event_id: str) -> str:
    return f"announce.{event_id}"


def events_key(run_id: str, index: int) -> str:
    return f"run.{run_id}.events.{index}"


def summary_key(index: int) -> str:
    return f"summary.{index}"


RUNS_PER_PAGE = 100


def runs_key(index: int) -> str:
    return f"runs.{index}"


class RunIndexPage(BaseModel):
    schema_version: int = SCHEMA_VERSION
    index: int
    run_ids: list[str] = Field(default_factory=list)


# Events of a run per stored page; fixed, since stored pages are addressed by it.
EVENTS_PER_PAGE = 64


class EventPage(BaseModel):
    schema_version: int = SCHEMA_VERSION
    index: int
    events: list[RunEvent] = Field(default_factory=list)


Stored = TypeVar("Stored", bound=BaseModel)


def read_stored(kind: type[Stored], data: dict[str, Any]) -> Stored:
    """A stored document as `kind`, refused if written under a schema version this code
    does not read (each kind's current version is its `schema_version` default)."""
    version, readable = data.get("schema_version"), kind.model_fields["schema_version"].default
    if version != readable:
        raise UnknownSchemaVersion(
            f"stored {kind.__name__} schema_version {version!r} is not readable here"
        )
    return kind.model_validate(data)


def append_messages(
    record: ThreadRecord, tail: HistoryPage, new: list[Message]
) -> tuple[ThreadRecord, list[HistoryPage]]:
    """Adds `new` after the tail page; returns the updated record and every page to write."""
    # A new list, the same messages: no message is ever changed in place.
    pages = [tail.model_copy(update={"messages": list(tail.messages)})]
    for message in new:
        if len(pages[-1].messages) >= record.page_size:
            pages.append(HistoryPage(index=pages[-1].index + 1))
        pages[-1].messages.append(message)
    updated = record.model_copy(
        update={"message_count": record.message_count + len(new), "updated_at": datetime.now(UTC)}
    )
    return updated, pages


def page_range(record: ThreadRecord, offset: int, limit: int) -> range:
    """The page indexes that hold messages [offset, offset + limit)."""
    end = min(offset + limit, record.message_count)
    if offset >= end:
        return range(0)
    return range(offset // record.page_size, (end - 1) // record.page_size + 1)
