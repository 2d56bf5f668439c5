"""The OpenAI Responses API: `POST /v1/responses`, backed by threads and runs.

A response is a run: its id names the thread and the run (`resp_<thread>_<run>`), so
`previous_response_id` continues that thread; `conversation` names a thread directly. The
`input` items after the last assistant output are the turn: a user message starts a run,
`function_call_output` items answer the client tool calls it waits for. Without a thread,
a new one starts with the earlier items stored once. docs/openai.md says the rest.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from actors.engine.messages import AssistantText, Message, ToolCall, ToolResult, UserText
from actors.engine.output import OutputSchema
from actors.engine.pauses import ToolOutput
from actors.engine.text import Text
from actors.engine.tool_set import ClientTool
from actors.threads.contract import RunView
from gateway.auth import Caller
from gateway.deps import (
    CatalogDep,
    DoorDep,
    IdempotencyKey,
    ThreadHeader,
)
from gateway.openai_answers import (
    agent_of,
    answer_of,
    client_calls,
    headers_of,
    streamed,
    text_as_it_comes,
    typed_turn,
)
from gateway.openai_door import ended_run
from gateway.openai_schemas import (
    MODEL_PATTERN,
    FunctionSpec,
    JsonObjectFormat,
    TextFormat,
    output_schema_of,
    text_parts_only,
)
from gateway.problems import InvalidRequest, ResponseNotFound, problem_responses
from gateway.thread_client import ThreadClient
from gateway.turn import Turn, TurnPlan, take_turn
from threadhost.common.ids import ID_PATTERN, THREAD_REF_PATTERN

# Its one route takes a turn, which admits itself (gateway/turn.py).
router = APIRouter(
    prefix="/v1",
    tags=["openai"],
    responses=problem_responses(400, 401, 404, 409, 413, 422, 429, 500, 503, 504),
)
_RESPONSE_ID = re.compile(r"^resp_([0-9a-f]{32})_([0-9a-f]{32})$")


class InputPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["input_text", "output_text", "text"]
    text: Text


class InputItem(BaseModel):
    """A message (`type` message, or none), a function call the model made, or its
    output; images, files and other item kinds are refused."""

    model_config = ConfigDict(extra="allow")
    type: Literal["message", "function_call", "function_call_output"] = "message"
    role: Literal["user", "assistant", "system", "developer"] | None = None
    content: Text | list[InputPart] | None = None
    call_id: Text | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, pattern=ID_PATTERN)
    arguments: Text | None = None
    output: Text | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_only(cls, content: Any) -> Any:
        return text_parts_only(content, {"input_text", "output_text", "text"})

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class FunctionTool(FunctionSpec):
    """A function tool as the Responses API declares it: flat, not under `function`."""

    type: Literal["function"]


# A conversation: a thread id, or `key:<key>` for the caller's thread of that key.
ThreadRefField = Annotated[str, Field(pattern=THREAD_REF_PATTERN)]


class ConversationRef(BaseModel):
    id: ThreadRefField


class JsonSchemaTextFormat(OutputSchema):
    """`text.format` of type `json_schema`: as chat completions' json_schema, flat."""

    type: Literal["json_schema"]


class TextConfig(BaseModel):
    """`text`: the answer's format (text, any JSON object, or JSON matching a schema)."""

    model_config = ConfigDict(extra="allow")
    format: Annotated[
        TextFormat | JsonSchemaTextFormat | JsonObjectFormat, Field(discriminator="type")
    ] = Field(default_factory=lambda: TextFormat(type="text"))

    def output_schema(self) -> OutputSchema | None:
        fmt = self.format
        if isinstance(fmt, JsonSchemaTextFormat):
            return OutputSchema.model_validate(fmt.model_dump(by_alias=True, exclude={"type"}))
        return output_schema_of(fmt)


class ResponseRequest(BaseModel):
    # Fields the API has that threadhost does not use are taken and ignored.
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {"model": "support", "input": "Where is my order 1001?"},
                # The result of a client tool call, on a thread named as a conversation.
                {
                    "model": "support",
                    "conversation": {"id": "th_7e9df6a3857a414db0471772481bc2c2"},
                    "input": [
                        {
                            "type": "message",
                            "role": "user",
                            "content": [{"type": "input_text", "text": "Where am I?"}],
                        },
                        {
                            "type": "function_call",
                            "call_id": "call_3_0",
                            "name": "get_location",
                            "arguments": "{}",
                        },
                        {"type": "function_call_output", "call_id": "call_3_0", "output": "Berlin"},
                    ],
                    "tools": [
                        {
                            "type": "function",
                            "name": "get_location",
                            "description": "Where the user is.",
                            "parameters": {"type": "object", "properties": {}},
                        }
                    ],
                },
                {
                    "model": "support",
                    "input": "And order 1002?",
                    "previous_response_id": "resp_7e9df6a3857a414db0471772481bc2c2_"
                    "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
                },
            ]
        },
    )
    model: str = Field(pattern=MODEL_PATTERN)
    input: Text | list[InputItem] = Field(min_length=1)
    previous_response_id: str | None = Field(default=None, max_length=100)
    conversation: ThreadRefField | ConversationRef | None = None
    stream: bool = False
    tools: list[FunctionTool] = Field(default_factory=list, max_length=64)
    tool_choice: Literal["auto"] | None = None
    background: Literal[False] | None = None
    # A typed answer: JSON matching a schema, or any JSON object.
    text: TextConfig | None = None


def _thread_of(body: ResponseRequest, header: str | None) -> str | None:
    if body.previous_response_id is not None:
        found = _RESPONSE_ID.match(body.previous_response_id)
        if found is None:
            raise ResponseNotFound(f"no response with id {body.previous_response_id!r}")
        return f"th_{found.group(1)}"
    conversation = body.conversation
    if isinstance(conversation, ConversationRef):
        return conversation.id
    return conversation or header


@router.post("/responses", responses={200: {"content": {"text/event-stream": {}}}})
async def create_response(
    body: ResponseRequest,
    door: DoorDep,
    catalog: CatalogDep,
    thread_header: ThreadHeader = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A turn of an agent's thread, in the Responses API's terms, streamed or not."""
    agent, recipe = agent_of(body.model, catalog)
    thread_id = _thread_of(body, thread_header)
    items = (
        [InputItem(role="user", content=body.input)]
        if isinstance(body.input, str)
        else [i for i in body.input if i.role not in ("system", "developer")]
    )
    answered = max(
        (n for n, i in enumerate(items) if i.role == "assistant" or i.type == "function_call"),
        default=-1,
    )
    before, turn = items[: answered + 1], items[answered + 1 :]
    kinds = {"user" if i.type == "message" else i.type for i in turn}
    if kinds not in ({"user"}, {"function_call_output"}):
        raise InvalidRequest(
            title="Nothing to answer",
            status=400,
            detail="input must end with user message(s), or with function_call_output "
            "items for the calls of the last response, not both",
        )
    plan = TurnPlan(
        agent=agent,
        recipe=recipe,
        thread_id=thread_id,
        door="openai-responses",
        earlier=_as_history(
            (before if thread_id is None else []) + (turn[:-1] if kinds == {"user"} else [])
        ),
        text=turn[-1].text if kinds == {"user"} else None,
        mode="stream" if body.stream else "wait",
        text_field="the last user message",
        idempotency_key=idempotency_key,
        output_schema=body.text.output_schema() if body.text else None,
        client_tools=[
            ClientTool(name=t.name, description=t.description or "", parameters=t.parameters)
            for t in body.tools
        ],
        actions=[
            ToolOutput(call_id=i.call_id or "", output=i.output or "")
            for i in turn
            if i.type == "function_call_output"
        ],
    )
    taken = await take_turn(door, plan)
    if taken.listener is not None:
        heartbeat = door.settings.sse_heartbeat_seconds
        return streamed(taken, _stream(door.client, door.caller, taken, body, heartbeat))
    run = ended_run(taken)
    text = answer_of(run, taken.answer.messages or [], taken.submitted)
    return JSONResponse(_response(run, taken.thread_id, body, text), headers=headers_of(taken))


def _as_history(items: list[InputItem]) -> list[Message]:
    names = {i.call_id: i.name or "" for i in items if i.type == "function_call"}
    history: list[Message] = []
    for i in items:
        if i.type == "function_call":
            history.append(
                ToolCall(call_id=i.call_id or "", name=i.name or "", arguments=i.arguments or "{}")
            )
        elif i.type == "function_call_output":
            history.append(
                ToolResult(
                    call_id=i.call_id or "", content=i.output or "", name=names.get(i.call_id, "")
                )
            )
        elif i.role == "assistant":
            history.append(AssistantText(text=i.text))
        else:
            history.append(UserText(text=i.text))
    return history


def response_id(thread_id: str, run_id: str) -> str:
    return f"resp_{thread_id.removeprefix('th_')}_{run_id.removeprefix('run_')}"


def _output(run: RunView, text: str | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if text:
        items.append(_message(run, text, "completed"))
    items += [
        _function_call(call_id, name, arguments, "completed")
        for call_id, name, arguments in client_calls(run)
    ]
    return items


def _message(run: RunView, text: str, status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_{run.run_id.removeprefix('run_')}",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _function_call(call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def _response(
    run: RunView, thread_id: str, body: ResponseRequest, text: str | None, status: str | None = None
) -> dict[str, Any]:
    prompt, completion = run.usage.get("input_tokens", 0), run.usage.get("output_tokens", 0)
    incomplete = run.status == "incomplete"
    return {
        "id": response_id(thread_id, run.run_id),
        "object": "response",
        "created_at": int(run.created_at.timestamp()),
        "status": status or ("incomplete" if incomplete else "completed"),
        "model": body.model,
        "output": [] if status == "in_progress" else _output(run, text),
        "previous_response_id": body.previous_response_id,
        "conversation": {"id": thread_id},
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "temperature": None,
        "top_p": None,
        "tool_choice": "auto",
        "tools": [t.model_dump(exclude_none=True) for t in body.tools],
        "text": {"format": _format(run)},
        "usage": {
            "input_tokens": prompt,
            "output_tokens": completion,
            "total_tokens": prompt + completion,
            "input_tokens_details": {"cached_tokens": run.usage.get("cached_tokens", 0)},
            "output_tokens_details": {"reasoning_tokens": run.usage.get("reasoning_tokens", 0)},
        },
        "threadhost": {
            "thread_id": thread_id,
            "run_id": run.run_id,
            "status": run.status,
            "required_action": [a.model_dump() for a in run.required_action],
        },
    }


def _format(run: RunView) -> dict[str, Any]:
    """The answer's format, as the Responses API names it."""
    schema = run.output_schema
    if schema is None:
        return {"type": "text"}
    return {"type": "json_schema", **schema.model_dump(by_alias=True, exclude_none=True)}


async def _stream(
    client: ThreadClient, caller: Caller, taken: Turn, body: ResponseRequest, heartbeat: float
) -> AsyncIterator[str]:
    """The Responses API's streaming events: created, the message's text deltas, each
    function call, completed."""
    event = _Events()
    started = taken.answer.run
    for kind in ("response.created", "response.in_progress"):
        yield event(kind, response=_response(started, taken.thread_id, body, None, "in_progress"))
    message = _message(started, "", "in_progress")
    text = ""
    # A typed answer comes whole, once validated (gateway/openai_door.py).
    typed = typed_turn(taken)
    async for piece in text_as_it_comes(client, caller, taken, heartbeat):
        if typed:
            continue
        for chunk in _text_delta(event, message, piece, first=not text):
            yield chunk
        text += piece
    run = (await client.read_run(taken.thread_id, started.run_id, caller.owner)).run
    if typed and run.output is not None:
        text = json.dumps(run.output, ensure_ascii=False)
        for chunk in _text_delta(event, message, text, first=True):
            yield chunk
    if text:
        for chunk in _text_done(event, message, run, text):
            yield chunk
    for chunk in _function_calls(event, run, first_index=int(bool(text))):
        yield chunk
    yield _finished(event, _response(run, taken.thread_id, body, text or None), run)


class _Events:
    """A stream's events in the Responses API's framing, numbered from 0."""

    def __init__(self) -> None:
        self._sent = 0

    def __call__(self, kind: str, **data: Any) -> str:
        payload = {"type": kind, "sequence_number": self._sent, **data}
        self._sent += 1
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n"


def _text_delta(event: _Events, message: dict[str, Any], piece: str, first: bool) -> list[str]:
    """A piece of the message's text; the first opens the message and its text part."""
    opened = (
        [
            event("response.output_item.added", output_index=0, item=message),
            event(
                "response.content_part.added",
                item_id=message["id"],
                output_index=0,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": []},
            ),
        ]
        if first
        else []
    )
    delta = event(
        "response.output_text.delta",
        item_id=message["id"],
        output_index=0,
        content_index=0,
        delta=piece,
        logprobs=[],
    )
    return [*opened, delta]


def _text_done(event: _Events, message: dict[str, Any], run: RunView, text: str) -> list[str]:
    where = {"item_id": message["id"], "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "text": text, "annotations": []}
    return [
        event("response.output_text.done", **where, text=text, logprobs=[]),
        event("response.content_part.done", **where, part=part),
        event("response.output_item.done", output_index=0, item=_message(run, text, "completed")),
    ]


def _function_calls(event: _Events, run: RunView, first_index: int) -> list[str]:
    events = []
    for index, (call_id, name, arguments) in enumerate(client_calls(run), start=first_index):
        item = _function_call(call_id, name, arguments, "completed")
        events += [
            event(
                "response.output_item.added",
                output_index=index,
                item={**item, "arguments": "", "status": "in_progress"},
            ),
            event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=index,
                delta=arguments,
            ),
            event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=arguments,
            ),
            event("response.output_item.done", output_index=index, item=item),
        ]
    return events


def _finished(event: _Events, final: dict[str, Any], run: RunView) -> str:
    if run.status == "failed":
        final.update(
            status="failed",
            output=[],
            error={"code": "server_error", "message": run.reason or "the run failed"},
        )
        return event("response.failed", response=final)
    if run.status == "incomplete":
        return event("response.incomplete", response=final)
    return event("response.completed", response=final)
