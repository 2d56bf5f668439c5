"""OpenAI Chat Completions (and any OpenAI-compatible server) through the openai SDK."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import openai

from actors.engine.messages import AssistantPart, AssistantText, Message, ToolCall, ToolResult
from actors.engine.output import OutputSchema
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
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}


def map_messages(system: str, messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        if isinstance(message, AssistantText | ToolCall):
            if not out or out[-1]["role"] != "assistant":
                out.append({"role": "assistant", "content": None})
            if isinstance(message, AssistantText):
                out[-1]["content"] = (out[-1]["content"] or "") + message.text
            else:
                out[-1].setdefault("tool_calls", []).append(
                    {
                        "id": message.call_id,
                        "type": "function",
                        "function": {"name": message.name, "arguments": message.arguments},
                    }
                )
        elif isinstance(message, ToolResult):
            out.append(
                {"role": "tool", "tool_call_id": message.call_id, "content": message.content}
            )
        else:
            out.append({"role": "user", "content": message.model_text})
    return out


def map_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in tools
    ]


def map_usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return Usage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cached_tokens=getattr(prompt_details, "cached_tokens", 0) or 0,
        reasoning_tokens=getattr(completion_details, "reasoning_tokens", 0) or 0,
    )


def json_schema_format(schema: OutputSchema) -> dict[str, Any]:
    """A `json_schema` response format, as both OpenAI APIs take it."""
    described = {"description": schema.description} if schema.description else {}
    return {
        "name": schema.name,
        "schema": schema.json_schema,
        "strict": schema.strict,
        **described,
    }


def parse_response(completion: Any, model: str) -> ModelResponse:
    choice = completion.choices[0]
    parts: list[AssistantPart] = []
    # A refusal of a structured answer comes instead of its content: it is the answer
    # (which then does not match the schema, and says why).
    text = choice.message.content or getattr(choice.message, "refusal", None)
    if text:
        parts.append(AssistantText(text=text, model=completion.model))
    for call in choice.message.tool_calls or []:
        parts.append(
            ToolCall(
                call_id=call.id,
                name=call.function.name,
                arguments=call.function.arguments or "{}",
                model=completion.model,
            )
        )
    return ModelResponse(
        parts=parts,
        model=completion.model or model,
        usage=map_usage(completion.usage),
        stop_reason=STOP_REASONS.get(choice.finish_reason, "other"),
    )


class OpenAIClientProvider(Provider):
    """What both OpenAI APIs' adapters hold: one SDK client (with its connection pool)."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.model = model
        # Retries are the engine's (RetryPolicy), so the SDK makes one attempt per call.
        self._client = openai.AsyncOpenAI(
            api_key=api_key or env_key(), base_url=base_url, timeout=timeout, max_retries=0
        )


class OpenAIChat(OpenAIClientProvider):
    vendor = "openai"

    def _arguments(self, request: ModelRequest) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": self.model,
            "messages": map_messages(request.system, request.messages),
        }
        if request.tools:
            arguments["tools"] = map_tools(request.tools)
        if request.settings.temperature is not None:
            arguments["temperature"] = request.settings.temperature
        if request.settings.max_output_tokens is not None:
            arguments["max_completion_tokens"] = request.settings.max_output_tokens
        if (schema := request.output_schema) is not None:
            arguments["response_format"] = {
                "type": "json_schema",
                "json_schema": json_schema_format(schema),
            }
        return arguments

    async def complete(self, request: ModelRequest) -> ModelResponse:
        with vendor_errors(openai, self.vendor):
            completion = await self._client.chat.completions.create(**self._arguments(request))
        return parse_response(completion, self.model)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        calls: dict[int, dict[str, str]] = {}
        text, finish, usage, model = "", None, None, self.model
        with vendor_errors(openai, self.vendor):
            chunks = await self._client.chat.completions.create(
                **self._arguments(request), stream=True, stream_options={"include_usage": True}
            )
            async for chunk in chunks:
                model, usage = chunk.model or model, chunk.usage or usage
                for choice in chunk.choices:
                    finish = choice.finish_reason or finish
                    piece = choice.delta.content or getattr(choice.delta, "refusal", None)
                    if piece:
                        text += piece
                        yield TextDelta(text=piece)
                    for delta in choice.delta.tool_calls or []:
                        call = calls.setdefault(delta.index, {"id": "", "name": "", "args": ""})
                        call["id"] = delta.id or call["id"]
                        if delta.function is not None:
                            call["name"] += delta.function.name or ""
                            call["args"] += delta.function.arguments or ""
        if finish is None:
            raise stream_cut(self.vendor)
        parts: list[AssistantPart] = [AssistantText(text=text, model=model)] if text else []
        parts += [
            ToolCall(call_id=c["id"], name=c["name"], arguments=c["args"] or "{}", model=model)
            for _, c in sorted(calls.items())
        ]
        yield ModelResponse(
            parts=parts,
            model=model,
            usage=map_usage(usage),
            stop_reason=STOP_REASONS.get(finish, "other"),
        )


def env_key() -> str:
    # OpenAI-compatible local servers (Ollama, vLLM, llama.cpp) take any key; OpenAI itself
    # answers 401 to a missing one, which becomes AuthenticationFailed.
    return os.environ.get("OPENAI_API_KEY") or "unset"
