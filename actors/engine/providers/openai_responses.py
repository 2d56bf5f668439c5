"""OpenAI Responses API through the openai SDK."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai

from actors.engine.errors import ProviderUnavailable
from actors.engine.messages import AssistantPart, AssistantText, Message, ToolCall, ToolResult
from actors.engine.provider import (
    ModelRequest,
    ModelResponse,
    StopReason,
    StreamEvent,
    TextDelta,
    ToolSpec,
)
from actors.engine.providers.openai_chat import OpenAIClientProvider, json_schema_format
from actors.engine.providers.sdk_errors import stream_cut, vendor_errors
from actors.engine.usage import Usage


def map_input(messages: list[Message]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, ToolCall):
            items.append(
                {
                    "type": "function_call",
                    "call_id": message.call_id,
                    "name": message.name,
                    "arguments": message.arguments,
                }
            )
        elif isinstance(message, ToolResult):
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.call_id,
                    "output": message.content,
                }
            )
        elif isinstance(message, AssistantText):
            items.append({"type": "message", "role": "assistant", "content": message.text})
        else:
            items.append({"type": "message", "role": "user", "content": message.model_text})
    return items


def map_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "name": t.name,
            "description": t.description,
            "parameters": t.parameters,
        }
        for t in tools
    ]


def map_usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    return Usage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cached_tokens=getattr(getattr(usage, "input_tokens_details", None), "cached_tokens", 0)
        or 0,
        reasoning_tokens=getattr(
            getattr(usage, "output_tokens_details", None), "reasoning_tokens", 0
        )
        or 0,
    )


def parse_response(response: Any, model: str) -> ModelResponse:
    used = response.model or model
    parts: list[AssistantPart] = []
    for item in response.output or []:
        if item.type == "message":
            # A refusal of a structured answer is the answer (which then says why).
            text = "".join(
                c.text if c.type == "output_text" else getattr(c, "refusal", "")
                for c in item.content
                if c.type in ("output_text", "refusal")
            )
            if text:
                parts.append(AssistantText(text=text, model=used))
        elif item.type == "function_call":
            parts.append(
                ToolCall(
                    call_id=item.call_id,
                    name=item.name,
                    arguments=item.arguments or "{}",
                    model=used,
                )
            )
    stop: StopReason = "end_turn"
    if any(isinstance(p, ToolCall) for p in parts):
        stop = "tool_use"
    elif response.status == "incomplete":
        details = getattr(response, "incomplete_details", None)
        stop = "max_tokens" if getattr(details, "reason", "") == "max_output_tokens" else "other"
    return ModelResponse(parts=parts, model=used, usage=map_usage(response.usage), stop_reason=stop)


class OpenAIResponses(OpenAIClientProvider):
    vendor = "openai-responses"

    def _arguments(self, request: ModelRequest) -> dict[str, Any]:
        # store=False: the thread's history lives in threadhost, not at the vendor.
        arguments: dict[str, Any] = {
            "model": self.model,
            "input": map_input(request.messages),
            "store": False,
        }
        if request.system:
            arguments["instructions"] = request.system
        if request.tools:
            arguments["tools"] = map_tools(request.tools)
        if request.settings.temperature is not None:
            arguments["temperature"] = request.settings.temperature
        if request.settings.max_output_tokens is not None:
            arguments["max_output_tokens"] = request.settings.max_output_tokens
        if (schema := request.output_schema) is not None:
            arguments["text"] = {"format": {"type": "json_schema", **json_schema_format(schema)}}
        return arguments

    async def complete(self, request: ModelRequest) -> ModelResponse:
        with vendor_errors(openai, self.vendor):
            response = await self._client.responses.create(**self._arguments(request))
        return parse_response(response, self.model)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        final = None
        with vendor_errors(openai, self.vendor):
            events = await self._client.responses.create(**self._arguments(request), stream=True)
            async for event in events:
                if event.type == "response.output_text.delta":
                    yield TextDelta(text=event.delta)
                elif event.type in ("response.completed", "response.incomplete"):
                    final = event.response
                elif event.type in ("response.failed", "error"):
                    raise ProviderUnavailable(f"{self.vendor}: {_failure(event)}")
        if final is None:
            raise stream_cut(self.vendor)
        yield parse_response(final, self.model)


def _failure(event: Any) -> str:
    error = getattr(getattr(event, "response", None), "error", None) or event
    return getattr(error, "message", None) or json.dumps(str(error))
