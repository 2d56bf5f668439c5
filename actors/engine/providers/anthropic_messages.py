"""Anthropic Messages API through the anthropic SDK."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import anthropic

from actors.engine.messages import (
    AssistantPart,
    AssistantText,
    Message,
    ToolCall,
    UserText,
)
from actors.engine.provider import (
    ModelRequest,
    ModelResponse,
    Provider,
    StopReason,
    StreamEvent,
    TextDelta,
    ToolSpec,
)
from actors.engine.providers.sdk_errors import stream_cut, vendor_errors
from actors.engine.usage import Usage

STOP_REASONS: dict[str | None, StopReason] = {
    "end_turn": "end_turn",
    "stop_sequence": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "refusal": "refusal",
}
# The API requires max_tokens; this is used when the agent sets none.
DEFAULT_MAX_TOKENS = 4096


def map_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Assistant parts become one assistant message; tool results and user text, user ones."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = "assistant" if isinstance(message, AssistantText | ToolCall) else "user"
        if isinstance(message, AssistantText | UserText):
            text = message.model_text if isinstance(message, UserText) else message.text
            block: dict[str, Any] = {"type": "text", "text": text}
        elif isinstance(message, ToolCall):
            block = {
                "type": "tool_use",
                "id": message.call_id,
                "name": message.name,
                "input": _arguments(message),
            }
        else:
            block = {
                "type": "tool_result",
                "tool_use_id": message.call_id,
                "content": message.content,
                "is_error": message.is_error,
            }
        if not out or out[-1]["role"] != role:
            out.append({"role": role, "content": []})
        out[-1]["content"].append(block)
    return out


def _arguments(call: ToolCall) -> Any:
    try:
        return json.loads(call.arguments or "{}")
    except ValueError:
        # The model sent invalid JSON once; replay it as a string it can see and fix.
        return {"_unparsed_arguments": call.arguments}


def map_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools
    ]


def map_usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    cache_read = getattr(usage, "cache_read_input_tokens", 0) or 0
    cache_write = getattr(usage, "cache_creation_input_tokens", 0) or 0
    # Anthropic counts cached input apart from input_tokens; ours includes it.
    return Usage(
        input_tokens=(usage.input_tokens or 0) + cache_read + cache_write,
        output_tokens=usage.output_tokens or 0,
        cached_tokens=cache_read,
    )


def parse_response(message: Any, model: str) -> ModelResponse:
    used = message.model or model
    parts: list[AssistantPart] = []
    for block in message.content:
        if block.type == "text" and block.text:
            parts.append(AssistantText(text=block.text, model=used))
        elif block.type == "tool_use":
            parts.append(
                ToolCall(
                    call_id=block.id, name=block.name, arguments=json.dumps(block.input), model=used
                )
            )
    return ModelResponse(
        parts=parts,
        model=used,
        usage=map_usage(message.usage),
        stop_reason=STOP_REASONS.get(message.stop_reason, "other"),
    )


class AnthropicMessages(Provider):
    vendor = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.model = model
        key = api_key or os.environ.get("ANTHROPIC_API_KEY") or "unset"
        self._client = anthropic.AsyncAnthropic(
            api_key=key, base_url=base_url, timeout=timeout, max_retries=0
        )

    def _arguments(self, request: ModelRequest) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": self.model,
            "messages": map_messages(request.messages),
            "max_tokens": request.settings.max_output_tokens or DEFAULT_MAX_TOKENS,
        }
        if request.system:
            arguments["system"] = request.system
        if request.tools:
            arguments["tools"] = map_tools(request.tools)
        if request.settings.temperature is not None:
            arguments["temperature"] = request.settings.temperature
        if request.output_schema is not None:
            arguments["output_config"] = {
                "format": {"type": "json_schema", "schema": request.output_schema.json_schema}
            }
        return arguments

    async def complete(self, request: ModelRequest) -> ModelResponse:
        with vendor_errors(anthropic, self.vendor):
            message = await self._client.messages.create(**self._arguments(request))
        return parse_response(message, self.model)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        blocks: dict[int, dict[str, Any]] = {}
        model, usage_in, output_tokens, stop = self.model, None, 0, None
        with vendor_errors(anthropic, self.vendor):
            events = await self._client.messages.create(**self._arguments(request), stream=True)
            async for event in events:
                if event.type == "message_start":
                    model, usage_in = event.message.model or model, event.message.usage
                elif event.type == "content_block_start":
                    block = event.content_block
                    blocks[event.index] = {
                        "type": block.type,
                        "text": "",
                        "json": "",
                        "id": getattr(block, "id", ""),
                        "name": getattr(block, "name", ""),
                    }
                elif event.type == "content_block_delta":
                    if event.delta.type == "text_delta":
                        blocks[event.index]["text"] += event.delta.text
                        yield TextDelta(text=event.delta.text)
                    elif event.delta.type == "input_json_delta":
                        blocks[event.index]["json"] += event.delta.partial_json
                elif event.type == "message_delta":
                    stop = event.delta.stop_reason or stop
                    output_tokens = event.usage.output_tokens or output_tokens
        if stop is None:
            raise stream_cut(self.vendor)
        parts: list[AssistantPart] = []
        for _, block in sorted(blocks.items()):
            if block["type"] == "text" and block["text"]:
                parts.append(AssistantText(text=block["text"], model=model))
            elif block["type"] == "tool_use":
                parts.append(
                    ToolCall(
                        call_id=block["id"],
                        name=block["name"],
                        arguments=block["json"] or "{}",
                        model=model,
                    )
                )
        usage = map_usage(usage_in)
        usage.output_tokens = output_tokens
        yield ModelResponse(
            parts=parts, model=model, usage=usage, stop_reason=STOP_REASONS.get(stop, "other")
        )
