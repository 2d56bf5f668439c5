"""The Owner actor's contract: what the gateway and a thread's effects ask of a caller's
Owner (their thread list, rate limits, run slots and follow-up count), and what it answers.

    Owner method    request         answer
    AddThread       AddThread       Listed          (once: a retried listing finds it)
    RemoveThread    RemoveThread    Listed          (status not_found if not listed)
    ListThreads     ListThreads     ThreadList      (newest first)
    Admit           Admit           Admission       (allowed, or when to try again)
    RunEnded        RunEnded        Listed          (a run slot is free again; with the
                                                     thread's state change, if one waits)
    SetFollowups    SetFollowups    FollowupCount   (allowed, or how many are scheduled)

Nothing in it needs Dapr; the Owner actor, the gateway and the effects all import it."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from threadhost.common.ids import encoded_actor_id

OWNER_ACTOR = "Owner"
Answer = TypeVar("Answer", bound=BaseModel)


def owner_actor_id(owner: str) -> str:
    """Owners hold ':' and '/', which actor ids in URLs may not: a URL-safe encoding."""
    return encoded_actor_id(owner)


class ThreadSummary(BaseModel):
    id: str
    agent: str
    created_at: datetime
    metadata: dict[str, str] = Field(default_factory=dict)
    # The caller's key for the thread, if it was opened by one.
    key: str | None = None


# --- answers ---------------------------------------------------------------------------


class Listed(BaseModel):
    status: Literal["ok", "not_found"] = "ok"
    # AddThread: the owner's first thread (a service's end user is new to it).
    first: bool = False


class EndUserList(BaseModel):
    status: Literal["ok"] = "ok"
    end_users: list[str]


class ThreadList(BaseModel):
    status: Literal["ok"] = "ok"
    threads: list[ThreadSummary]


class Admission(BaseModel):
    allowed: bool
    retry_after: int = 0
    # With a run: the thread held a slot before this admission (it took no new one).
    held: bool = False


class FollowupCount(BaseModel):
    allowed: bool
    # When refused: how many the owner has scheduled already.
    scheduled: int = 0


# --- requests --------------------------------------------------------------------------


class OwnerRequest(BaseModel, Generic[Answer]):
    model_config = ConfigDict(extra="forbid")
    method: ClassVar[str]
    answer: ClassVar[type[BaseModel]]

    def safe_to_repeat(self) -> bool:
        """Whether sending it again, after a call whose outcome is unknown, does nothing
        twice."""
        return True

    def read_answer(self, raw: bytes) -> Answer:
        """The Owner's answer to this request, from the JSON it sent back."""
        return self.answer.model_validate_json(raw)  # type: ignore[return-value]


class AddThread(OwnerRequest[Listed], ThreadSummary):
    model_config = ConfigDict(extra="forbid")
    method, answer = "AddThread", Listed


class RemoveThread(OwnerRequest[Listed]):
    method, answer = "RemoveThread", Listed
    thread_id: str


# A thread's state, as its owner's list knows it: a run running, a run waiting for its
# caller (requires_action), or no run.
ThreadStatus = Literal["active", "waiting", "idle"]


class AddEndUser(OwnerRequest[Listed]):
    """A service's end user has their first thread: the service lists them (once)."""

    method, answer = "AddEndUser", Listed
    end_user: str


class ListEndUsers(OwnerRequest[EndUserList]):
    """A service's end users, newest first."""

    method, answer = "ListEndUsers", EndUserList
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1)


class ListThreads(OwnerRequest[ThreadList]):
    method, answer = "ListThreads", ThreadList
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=20, ge=1)
    # Only threads in this state, and with every one of these metadata pairs.
    status: ThreadStatus | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class StatusChange(BaseModel):
    """A thread's state changed (told after the commit that changed it; an older change
    arriving late changes nothing)."""

    thread: ThreadSummary
    status: ThreadStatus
    at: datetime


class SetStatus(OwnerRequest[Listed]):
    """Threads' state changes, as each host gathers them for the owner (about two a
    second at most from each host, however many runs start and stop)."""

    method, answer = "SetStatus", Listed
    changes: list[StatusChange]


class Admit(OwnerRequest[Admission]):
    """A request (and, with `run`, a run start on `thread_id`) within the caller's limits?
    0: no bound. A run slot is held by its thread (one run runs on a thread at a time):
    the thread's second admission while it holds one takes no other."""

    method, answer = "Admit", Admission
    per_minute: int = 0
    max_runs: int = 0
    run: bool = False
    thread_id: str | None = None

    def safe_to_repeat(self) -> bool:
        # Repeated, an Admit counts one request too many at worst; a slot is the thread's,
        # so taking it again takes nothing more.
        return True


class RunEnded(OwnerRequest[Listed]):
    """The thread's run slot is free again. From a thread, it takes along the thread's
    state change that waited to be told (actors/dapr_host/status_batches.py): a short
    run's start and end then cost its owner this one call, not another of their own."""

    method, answer = "RunEnded", Listed
    thread_id: str
    changes: list[StatusChange] = Field(default_factory=list)

    def safe_to_repeat(self) -> bool:
        return True  # the thread's slot is free, however often it is said


class SetFollowups(OwnerRequest[FollowupCount]):
    """The thread now has `count` follow-ups scheduled; `limit` is the owner's bound (0:
    none, and the count is only recorded)."""

    method, answer = "SetFollowups", FollowupCount
    thread_id: str
    count: int = Field(ge=0)
    limit: int = 0
