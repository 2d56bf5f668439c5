"""The gateway's dependencies, each named once: the settings, the thread client, the
caller, the agent catalog, the headers and path ids every door reads, and admission."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Header, Path, Request

from actors.engine.agents import AgentCatalog
from actors.threads.owner_contract import Admission, Admit
from gateway.auth import Caller
from gateway.problems import QuotaExceeded, RateLimited
from gateway.schemas import THREAD_ID_PATTERN
from gateway.thread_client import ThreadClient
from threadhost.common.ids import THREAD_REF_PATTERN, thread_key_of, thread_of_key
from threadhost.common.settings import Settings
from threadhost.common.usage_ledger import process_ledger


# Async, so FastAPI calls them on the event loop rather than in a worker thread.
async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _client(request: Request) -> ThreadClient:
    return request.app.state.thread_client


async def _caller(request: Request) -> Caller:
    return await request.app.state.authenticator.caller(request)


async def _catalog(request: Request) -> AgentCatalog:
    return request.app.state.agent_catalog


SettingsDep = Annotated[Settings, Depends(_settings)]
ClientDep = Annotated[ThreadClient, Depends(_client)]
CallerDep = Annotated[Caller, Depends(_caller)]
CatalogDep = Annotated[AgentCatalog, Depends(_catalog)]


@dataclass(frozen=True)
class Door:
    """Who takes a turn through a door, and with what: every door's handler has one."""

    client: ThreadClient
    caller: Caller
    settings: Settings
    # The HTTP request, where a stream's listener is opened (none for the MCP door's
    # turns, which are not streamed).
    request: Request | None = None


async def _door(
    request: Request, client: ClientDep, caller: CallerDep, settings: SettingsDep
) -> Door:
    return Door(client, caller, settings, request)


DoorDep = Annotated[Door, Depends(_door)]


@dataclass(frozen=True)
class ThreadRef:
    """The thread a request names: by its id, or `key:<key>` for the caller's thread of
    that key (whose id is made of the caller's owner and the key)."""

    id: str
    key: str | None = None

    @classmethod
    def of(cls, caller: Caller, value: str) -> ThreadRef:
        key = thread_key_of(value)
        return cls(value) if key is None else cls(thread_of_key(caller.owner, key), key)


async def _thread_ref(
    thread_id: Annotated[
        str,
        Path(
            pattern=THREAD_REF_PATTERN,
            description="a thread id, or `key:` and the caller's key for the thread",
            examples=["th_7e9df6a3857a414db0471772481bc2c2", "key:order-1001"],
        ),
    ],
    caller: CallerDep,
) -> ThreadRef:
    return ThreadRef.of(caller, thread_id)


async def _thread_id(ref: Annotated[ThreadRef, Depends(_thread_ref)]) -> str:
    return ref.id


# The thread of a route's path, by id or key; a turn's route takes the key too (a turn
# opens the thread of a key that has none yet).
ThreadRefDep = Annotated[ThreadRef, Depends(_thread_ref)]
ThreadId = Annotated[str, Depends(_thread_id)]
RunId = Annotated[str, Path(pattern=THREAD_ID_PATTERN)]
# A caller's retry key, on every door that makes or changes something.
IdempotencyKey = Annotated[str | None, Header(max_length=200)]
# The thread the OpenAI doors continue, and name in every answer.
THREAD_HEADER = "threadhost-thread-id"
ThreadHeader = Annotated[str | None, Header(alias=THREAD_HEADER, pattern=THREAD_REF_PATTERN)]


async def admitted(caller: CallerDep, settings: SettingsDep, client: ClientDep) -> None:
    """The caller's rate limits, kept by their Owner actor, so they hold across replicas:
    the dependency of every route but a door's turn, which the turn admits with the run it
    starts (gateway/turn.py), once its input is known to be a turn at all."""
    await admit(client, caller, settings, starts_run=False)


async def admit(
    client: ThreadClient,
    caller: Caller,
    settings: Settings,
    starts_run: bool,
    thread_id: str | None = None,
) -> Admission | None:
    """Counts a request (and a run it starts on `thread_id`) against the caller's limits;
    429 if over, or if a run would start while a quota of the caller's is used up. The
    Owner's answer, if it was asked."""
    if starts_run and (refusal := await process_ledger(settings).refusal(caller.owner)):
        seconds = max(1, math.ceil((refusal.resets_at - datetime.now(UTC)).total_seconds()))
        raise QuotaExceeded(
            refusal.reason, retry_after=seconds, resets_at=refusal.resets_at.isoformat()
        )
    if not (settings.rate_limit_per_minute or settings.max_concurrent_runs):
        return None
    answer = await client.owner_call(
        caller.owner,
        Admit(
            per_minute=settings.rate_limit_per_minute,
            # Slots are kept only where they are bounded.
            run=starts_run and bool(settings.max_concurrent_runs),
            max_runs=settings.max_concurrent_runs,
            thread_id=thread_id,
        ),
    )
    if not answer.allowed:
        raise RateLimited(
            "too many runs going on"
            if starts_run and settings.max_concurrent_runs
            else "too many requests this minute",
            retry_after=answer.retry_after,
        )
    return answer
