"""The project's own, vendor-neutral message types, told apart by their `kind`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter


def _now() -> datetime:
    return datetime.now(UTC)


class UserText(BaseModel):
    kind: Literal["user_text"] = "user_text"
    text: str
    at: datetime = Field(default_factory=_now)


class AssistantText(BaseModel):
    kind: Literal["assistant_text"] = "assistant_text"
    text: str
    model: str = ""
    at: datetime = Field(default_factory=_now)


Message = Annotated[UserText | AssistantText, Field(discriminator="kind")]
messages_adapter: TypeAdapter[list[Message]] = TypeAdapter(list[Message])
