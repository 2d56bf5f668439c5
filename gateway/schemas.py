"""The public API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

# Thread ids travel in URLs and actor keys: keep them to a safe alphabet.
THREAD_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class CreateThread(BaseModel):
    metadata: dict[str, str] = Field(default_factory=dict, max_length=16,
                                     examples=[{"user": "u-42"}])


class PostMessage(BaseModel):
    content: str = Field(examples=["Where is my order 1001?"])


class ThreadView(BaseModel):
    id: str
    created_at: datetime
    updated_at: datetime
    message_count: int
    metadata: dict[str, str]

    @classmethod
    def of(cls, thread: dict[str, Any]) -> ThreadView:
        return cls(id=thread["thread_id"], **{k: v for k, v in thread.items() if k != "thread_id"})


class MessageView(BaseModel):
    index: int
    role: Literal["user", "assistant"]
    content: str
    created_at: datetime
    model: str | None = None

    @classmethod
    def of(cls, index: int, message: dict[str, Any]) -> MessageView:
        role = "user" if message["kind"] == "user_text" else "assistant"
        return cls(index=index, role=role, content=message["text"], created_at=message["at"],
                   model=message.get("model") or None)


class TurnView(BaseModel):
    thread_id: str
    reply: str
    messages: list[MessageView]
    message_count: int


class HistoryView(BaseModel):
    thread_id: str
    messages: list[MessageView]
    message_count: int
    next_offset: int | None
