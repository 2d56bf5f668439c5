"""The project's own, vendor-neutral message types, told apart by their `kind`.

A model's answer is stored as the messages it is made of, in order: text and tool calls.
Adapters group consecutive messages back into whatever shape their vendor wants.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter


def _now() -> datetime:
    return datetime.now(UTC)


class UserText(BaseModel):
    kind: Literal["user_text"] = "user_text"
    text: str
    # "followup": the note of a follow-up that came due, from the system's side.
    origin: Literal["user", "followup"] = "user"
    at: datetime = Field(default_factory=_now)

    @property
    def model_text(self) -> str:
        """What the model reads: a follow-up's note says what it is."""
        if self.origin == "followup":
            return (
                f"[A follow-up you scheduled earlier is due; the user did not write this] "
                f"{self.text}"
            )
        return self.text


class AssistantText(BaseModel):
    kind: Literal["assistant_text"] = "assistant_text"
    text: str
    model: str = ""
    # The agent that answered (a handoff changes it within a run); "" in older messages.
    agent: str = ""
    at: datetime = Field(default_factory=_now)


class ToolCall(BaseModel):
    kind: Literal["tool_call"] = "tool_call"
    call_id: str
    name: str
    # The model's arguments as it sent them: JSON text, possibly invalid.
    arguments: str = "{}"
    model: str = ""
    agent: str = ""
    at: datetime = Field(default_factory=_now)


class ToolResult(BaseModel):
    kind: Literal["tool_result"] = "tool_result"
    call_id: str
    name: str
    content: str
    is_error: bool = False
    at: datetime = Field(default_factory=_now)


Message = Annotated[UserText | AssistantText | ToolCall | ToolResult, Field(discriminator="kind")]
messages_adapter: TypeAdapter[list[Message]] = TypeAdapter(list[Message])

AssistantPart = AssistantText | ToolCall
