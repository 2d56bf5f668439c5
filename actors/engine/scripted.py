"""A scripted provider: deterministic answers with no network, for local runs and tests.

A script is a list of replies, one per model call within a turn, played again every turn:
a string is a text answer; a `ScriptedReply` can also call tools and wait first (to imitate
a slow model). Past the end of its script, or with no script, it echoes the latest user
message; a follow-up's run gets "Following up: <its note>". Where it is in the script
follows from the messages alone, so a run resumed on another host gets the same answers.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pydantic import BaseModel, Field

from actors.engine.example_output import example
from actors.engine.messages import AssistantPart, AssistantText, ToolCall, UserText
from actors.engine.provider import ModelRequest, ModelResponse, Provider, StreamEvent, TextDelta
from actors.engine.usage import Usage


class ScriptedToolCall(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ScriptedReply(BaseModel):
    text: str = ""
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)
    delay_seconds: float = 0.0


class ScriptedProvider(Provider):
    vendor = "scripted"

    def __init__(
        self, script: Sequence[str | ScriptedReply | dict[str, Any]] = (), model: str = "scripted"
    ) -> None:
        self.model = model
        self._script = [self._reply(item) for item in script]

    @staticmethod
    def _reply(item: str | ScriptedReply | dict[str, Any]) -> ScriptedReply:
        if isinstance(item, str):
            return ScriptedReply(text=item)
        return item if isinstance(item, ScriptedReply) else ScriptedReply.model_validate(item)

    def _next_reply(self, request: ModelRequest) -> ScriptedReply:
        last_user = next((m for m in reversed(request.messages) if isinstance(m, UserText)), None)
        if last_user is not None and last_user.origin == "followup":
            # A follow-up's run: the script is for the user's turns.
            return ScriptedReply(text=f"Following up: {last_user.text}")
        calls = _model_calls_since_last_user(request)
        if calls < len(self._script) and self._script:
            return self._script[calls]
        return ScriptedReply(text=f"You said: {last_user.text if last_user else ''}")

    async def complete(self, request: ModelRequest) -> ModelResponse:
        reply = _summary(request) if request.purpose == "summary" else self._next_reply(request)
        if request.output_schema is not None and reply.text and not reply.tool_calls:
            reply = reply.model_copy(update={"text": _structured(reply.text, request)})
        if reply.delay_seconds:
            await asyncio.sleep(reply.delay_seconds)
        parts: list[AssistantPart] = []
        if reply.text:
            parts.append(AssistantText(text=reply.text, model=self.model))
        base = len(request.messages)
        for n, call in enumerate(reply.tool_calls):
            parts.append(
                ToolCall(
                    call_id=f"call_{base}_{n}",
                    name=call.name,
                    arguments=json.dumps(call.arguments),
                    model=self.model,
                )
            )
        words = sum(len(getattr(m, "text", "").split()) for m in request.messages)
        return ModelResponse(
            parts=parts,
            model=self.model,
            usage=Usage(input_tokens=words, output_tokens=len(reply.text.split())),
            stop_reason="tool_use" if reply.tool_calls else "end_turn",
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        response = await self.complete(request)
        for part in response.parts:
            if isinstance(part, AssistantText):
                for chunk in re.findall(r"\S+\s*|\s+", part.text):
                    yield TextDelta(text=chunk)
        yield response


def _structured(text: str, request: ModelRequest) -> str:
    """An answer in a structured-output mode: a scripted reply that is JSON as it is
    (a test's, right or wrong), any other the schema's example with the text in it."""
    try:
        json.loads(text)
    except ValueError:
        assert request.output_schema is not None
        return json.dumps(example(request.output_schema.json_schema, text), ensure_ascii=False)
    return text


def _summary(request: ModelRequest) -> ScriptedReply:
    """A summary request's answer: short, and saying what it was given."""
    given = "".join(getattr(m, "text", "") for m in request.messages)
    lines = given.count("\n") + 1
    return ScriptedReply(text=f"Summary of {lines} lines ({len(given)} characters): {given[:160]}")


def _model_calls_since_last_user(request: ModelRequest) -> int:
    calls = 0
    previous_was_assistant = False
    for message in request.messages:
        if isinstance(message, UserText):
            calls, previous_was_assistant = 0, False
        elif isinstance(message, AssistantText | ToolCall):
            if not previous_was_assistant:
                calls += 1
            previous_was_assistant = True
        else:
            previous_was_assistant = False
    return calls
