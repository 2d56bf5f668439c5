"""Routes for threads and their messages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from gateway.problems import Problem
from gateway.schemas import (
    THREAD_ID_PATTERN,
    CreateThread,
    HistoryView,
    MessageView,
    PostMessage,
    ThreadView,
    TurnView,
)
from gateway.thread_client import ThreadClient
from threadhost.ids import new_thread_id
from threadhost.settings import Settings

router = APIRouter(prefix="/v1/threads", tags=["threads"])


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _client(request: Request) -> ThreadClient:
    return request.app.state.thread_client


SettingsDep = Annotated[Settings, Depends(_settings)]
ClientDep = Annotated[ThreadClient, Depends(_client)]
ThreadId = Annotated[str, Path(pattern=THREAD_ID_PATTERN)]


@router.post("", status_code=201, response_model=ThreadView)
async def create_thread(client: ClientDep,
                        body: Annotated[CreateThread | None, Body()] = None) -> ThreadView:
    body = body or CreateThread()
    result = await client.call(new_thread_id(), "Create", {"metadata": body.metadata})
    return ThreadView.of(result["thread"])


@router.get("/{thread_id}", response_model=ThreadView)
async def get_thread(thread_id: ThreadId, client: ClientDep) -> ThreadView:
    result = await client.call(thread_id, "Describe")
    return ThreadView.of(result["thread"])


@router.post("/{thread_id}/messages", response_model=TurnView)
async def post_message(thread_id: ThreadId, body: PostMessage, client: ClientDep,
                       settings: SettingsDep) -> TurnView:
    if not body.content.strip():
        raise Problem(422, "invalid-request", "Empty message", "content must not be blank")
    if len(body.content) > settings.max_message_chars:
        raise Problem(422, "invalid-request", "Message too long",
                      f"content is {len(body.content)} characters; "
                      f"the limit is {settings.max_message_chars}")
    result = await client.call(thread_id, "PostMessage", {"text": body.content})
    first = result["first_index"]
    messages = [MessageView.of(first + i, m) for i, m in enumerate(result["messages"])]
    return TurnView(thread_id=thread_id, reply=messages[-1].content, messages=messages,
                    message_count=result["thread"]["message_count"])


@router.get("/{thread_id}/messages", response_model=HistoryView)
async def read_history(thread_id: ThreadId, client: ClientDep, settings: SettingsDep,
                       offset: Annotated[int, Query(ge=0)] = 0,
                       limit: Annotated[int | None, Query(ge=1)] = None) -> HistoryView:
    limit = min(limit or settings.max_history_limit, settings.max_history_limit)
    result = await client.call(thread_id, "ReadHistory", {"offset": offset, "limit": limit})
    messages = [MessageView.of(offset + i, m) for i, m in enumerate(result["messages"])]
    count = result["thread"]["message_count"]
    end = offset + len(messages)
    return HistoryView(thread_id=thread_id, messages=messages, message_count=count,
                       next_offset=end if end < count else None)
