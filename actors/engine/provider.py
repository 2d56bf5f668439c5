"""The provider protocol: a model vendor behind two calls, `complete` and `stream`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, Field

from actors.engine.messages import AssistantPart, Message
from actors.engine.output import OutputSchema
from actors.engine.usage import Usage

StopReason = Literal["end_turn", "tool_use", "max_tokens", "refusal", "other"]


class ToolSpec(BaseModel):
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ModelSettings(BaseModel):
    temperature: float | None = None
    max_output_tokens: int | None = None


class ModelRequest(BaseModel):
    system: str = ""
    messages: list[Message]
    tools: list[ToolSpec] = Field(default_factory=list)
    settings: ModelSettings = Field(default_factory=ModelSettings)
    # A turn of the agent, or a summary of older messages (engine/context.py).
    purpose: Literal["turn", "summary"] = "turn"
    # The schema the answer must match, asked of the vendor's structured-output mode.
    output_schema: OutputSchema | None = None


class ModelResponse(BaseModel):
    parts: list[AssistantPart]
    model: str
    usage: Usage = Field(default_factory=Usage)
    stop_reason: StopReason = "end_turn"


class TextDelta(BaseModel):
    text: str


StreamEvent = TextDelta | ModelResponse


class Provider:
    """Adapters implement both calls; `stream` ends with the whole ModelResponse."""

    vendor: str = ""
    model: str = ""

    async def complete(self, request: ModelRequest) -> ModelResponse:
        raise NotImplementedError

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        response = await self.complete(request)
        yield response
