"""The provider protocol: how the engine asks a model for its next message."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from pydantic import BaseModel

from actors.engine.messages import Message


class ModelResponse(BaseModel):
    text: str
    model: str


class Provider:
    """A model vendor behind two calls; adapters implement both."""

    async def complete(self, messages: Sequence[Message]) -> ModelResponse:
        raise NotImplementedError

    async def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        response = await self.complete(messages)
        yield response.text
