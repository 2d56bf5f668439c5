"""Canned replies in each vendor's wire format, JSON and streamed.

Each vendor class builds the same answer (some text and/or tool calls, with usage) the way
that vendor's API sends it, so one contract test can run against every adapter: the model
named as the vendor names it (a dated snapshot, `gpt-4o-mini-2024-07-18`, where the
request said `gpt-4o-mini`) and the usage fields its API reference shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.fakes.vendor_server import Reply


@dataclass(frozen=True)
class Answer:
    text: str = ""
    calls: tuple[tuple[str, str, str], ...] = ()  # (call id, tool name, JSON arguments)
    input_tokens: int = 11
    output_tokens: int = 7
    cached_tokens: int = 3
    reasoning_tokens: int = 2
    # None: the wire's own dated snapshot name, as the vendor answers a plain alias.
    model: str | None = None


# The snapshot each vendor's API names in its answer to a request for the alias.
OPENAI_SNAPSHOT = "gpt-4o-mini-2024-07-18"
ANTHROPIC_SNAPSHOT = "claude-haiku-4-5-20251001"


def _chunks(text: str, size: int = 4) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def error(status: int, message: str, **headers: str) -> Reply:
    return Reply(
        status=status,
        body={"type": "error", "error": {"type": "api_error", "message": message}},
        headers=headers,
    )


class OpenAIChatWire:
    snapshot = OPENAI_SNAPSHOT

    def reply(self, a: Answer) -> Reply:
        message: dict[str, Any] = {"role": "assistant", "content": a.text or None}
        if a.calls:
            message["tool_calls"] = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": args}}
                for i, n, args in a.calls
            ]
        message.update(refusal=None, annotations=[])
        return Reply(
            body={
                "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
                "object": "chat.completion",
                "created": 1741570283,
                "model": a.model or self.snapshot,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls" if a.calls else "stop",
                    }
                ],
                "usage": self._usage(a),
                "service_tier": "default",
                "system_fingerprint": "fp_06737a9306",
            }
        )

    def _usage(self, a: Answer) -> dict[str, Any]:
        return {
            "prompt_tokens": a.input_tokens,
            "completion_tokens": a.output_tokens,
            "total_tokens": a.input_tokens + a.output_tokens,
            "prompt_tokens_details": {"cached_tokens": a.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": a.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def stream(self, a: Answer, cut: bool = False) -> Reply:
        def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> Any:
            return (
                None,
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": a.model or self.snapshot,
                    "usage": usage,
                    "service_tier": "default",
                    "system_fingerprint": "fp_06737a9306",
                    "choices": []
                    if usage
                    else [{"index": 0, "delta": delta, "finish_reason": finish}],
                },
            )

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in _chunks(a.text)]
        for index, (call_id, name, args) in enumerate(a.calls):
            events.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call_id,
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            events += [
                chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]})
                for p in _chunks(args)
            ]
        if cut:
            return Reply(events=events[: len(events) // 2 + 1])
        events.append(chunk({}, "tool_calls" if a.calls else "stop"))
        events += [chunk({}, usage=self._usage(a)), (None, "[DONE]")]
        return Reply(events=events)


class OpenAIResponsesWire:
    snapshot = OPENAI_SNAPSHOT

    def _response(self, a: Answer) -> dict[str, Any]:
        output: list[dict[str, Any]] = []
        if a.text:
            output.append(
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": a.text, "annotations": []}],
                }
            )
        output += [
            {
                "type": "function_call",
                "id": f"fc_{i}",
                "call_id": call_id,
                "name": n,
                "arguments": args,
                "status": "completed",
            }
            for i, (call_id, n, args) in enumerate(a.calls)
        ]
        return {
            "id": "resp_1",
            "object": "response",
            "created_at": 0,
            "model": a.model or self.snapshot,
            "status": "completed",
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": a.input_tokens,
                "output_tokens": a.output_tokens,
                "total_tokens": a.input_tokens + a.output_tokens,
                "input_tokens_details": {"cached_tokens": a.cached_tokens},
                "output_tokens_details": {"reasoning_tokens": a.reasoning_tokens},
            },
        }

    def reply(self, a: Answer) -> Reply:
        return Reply(body=self._response(a))

    def stream(self, a: Answer, cut: bool = False) -> Reply:
        response = self._response(a)
        seq = iter(range(1000))
        events: list[tuple[str | None, Any]] = [
            (
                "response.created",
                {
                    "type": "response.created",
                    "sequence_number": next(seq),
                    "response": {**response, "status": "in_progress", "output": []},
                },
            )
        ]
        events += [
            (
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "sequence_number": next(seq),
                    "item_id": "msg_1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": piece,
                    "logprobs": [],
                },
            )
            for piece in _chunks(a.text)
        ]
        if cut:
            return Reply(events=events)
        events.append(
            (
                "response.completed",
                {"type": "response.completed", "sequence_number": next(seq), "response": response},
            )
        )
        return Reply(events=events)


class AnthropicWire:
    snapshot = ANTHROPIC_SNAPSHOT

    def reply(self, a: Answer) -> Reply:
        content: list[dict[str, Any]] = [{"type": "text", "text": a.text}] if a.text else []
        content += [
            {"type": "tool_use", "id": i, "name": n, "input": json_loads(args)}
            for i, n, args in a.calls
        ]
        return Reply(
            body={
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "type": "message",
                "role": "assistant",
                "model": a.model or self.snapshot,
                "content": content,
                "stop_reason": "tool_use" if a.calls else "end_turn",
                "stop_sequence": None,
                "usage": self._usage(a),
            }
        )

    def _usage(self, a: Answer) -> dict[str, Any]:
        return {
            "input_tokens": a.input_tokens - a.cached_tokens,
            "cache_read_input_tokens": a.cached_tokens,
            "cache_creation_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": a.output_tokens,
            "service_tier": "standard",
        }

    def stream(self, a: Answer, cut: bool = False) -> Reply:
        start = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": a.model or self.snapshot,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**self._usage(a), "output_tokens": 1},
        }
        events: list[tuple[str | None, Any]] = [
            ("message_start", {"type": "message_start", "message": start})
        ]
        index = 0
        if a.text:
            events.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            events += [
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
                for piece in _chunks(a.text)
            ]
            events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
            index = 1
        for n, (call_id, name, args) in enumerate(a.calls, start=index):
            events.append(
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": n,
                        "content_block": {
                            "type": "tool_use",
                            "id": call_id,
                            "name": name,
                            "input": {},
                        },
                    },
                )
            )
            events += [
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": n,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
                for piece in _chunks(args)
            ]
            events.append(("content_block_stop", {"type": "content_block_stop", "index": n}))
        if cut:
            return Reply(events=events[: len(events) // 2 + 1])
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": "tool_use" if a.calls else "end_turn",
                        "stop_sequence": None,
                    },
                    "usage": {"output_tokens": a.output_tokens},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return Reply(events=events)


def json_loads(text: str) -> Any:
    import json

    return json.loads(text)
