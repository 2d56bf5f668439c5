"""A scripted provider: deterministic replies with no network, for local runs and tests."""

from __future__ import annotations

from collections.abc import Sequence

from actors.engine.messages import Message, UserText
from actors.engine.provider import ModelResponse, Provider


class ScriptedProvider(Provider):
    """Answers from a fixed script in turn, then by echoing the last user message."""

    model = "scripted"

    def __init__(self, script: Sequence[str] = ()) -> None:
        self._script = list(script)
        self._calls = 0

    async def complete(self, messages: Sequence[Message]) -> ModelResponse:
        self._calls += 1
        if self._calls <= len(self._script):
            return ModelResponse(text=self._script[self._calls - 1], model=self.model)
        last_user = next((m for m in reversed(messages) if isinstance(m, UserText)), None)
        heard = last_user.text if last_user else ""
        return ModelResponse(text=f"You said: {heard}", model=self.model)
