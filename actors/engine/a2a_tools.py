"""Other teams' agents over A2A, as tools: a call is a task of theirs, sent with the
protocol's official client (`a2a-sdk`, JSON-RPC 1.0), and its answer is the result.

The call's `input` is the message; its id is the run's and the call's, so a tool step
repeated after a host died sends the same message (a server that takes message ids as
idempotency keys, as threadhost's door does, starts its task once). A task that ends
waiting for input gives its question as the result: the model decides what to do. The
SDK takes a second to import: actors/engine/outside_tools.py imports this module on a
worker thread, at the first call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import httpx
from a2a.client import ClientCallContext, ClientConfig, ClientFactory
from a2a.types import a2a_pb2 as a2a
from google.protobuf import json_format

from actors.engine.messages import ToolCall, ToolResult
from actors.engine.run import child_input
from actors.engine.service_tools import Endpoint, ToolCallContext, tool_error

ENDED = {
    a2a.TaskState.TASK_STATE_COMPLETED,
    a2a.TaskState.TASK_STATE_FAILED,
    a2a.TaskState.TASK_STATE_CANCELED,
    a2a.TaskState.TASK_STATE_REJECTED,
}


async def ask(
    http: httpx.AsyncClient,
    name: str,
    endpoint: Endpoint,
    call: ToolCall,
    context: ToolCallContext,
    limit: float,
) -> ToolResult:
    card = a2a.AgentCard(
        name=name,
        supported_interfaces=[
            a2a.AgentInterface(url=endpoint.url, protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=a2a.AgentCapabilities(streaming=False),
    )
    client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)
    request = a2a.SendMessageRequest(
        message=a2a.Message(
            message_id=context.idempotency_key,
            role=a2a.Role.ROLE_USER,
            parts=[a2a.Part(text=child_input(call.arguments))],
        )
    )
    headers = {**endpoint.headers, **context.headers()}
    found: a2a.Task | a2a.Message | None = None
    try:
        async with asyncio.timeout(limit):
            async for response in client.send_message(
                request, context=_with_headers(headers, limit)
            ):
                found = response.task if response.HasField("task") else response.message
    except TimeoutError:
        return tool_error(call, f"the agent {name} did not answer within {limit:g} s")
    except Exception as exc:  # noqa: BLE001 - the SDK raises what the wire gave
        return tool_error(call, f"the agent {name}: {type(exc).__name__}: {exc}")
    return _result(name, call, found)


def _with_headers(headers: dict[str, str], limit: float) -> ClientCallContext:
    return ClientCallContext(timeout=limit, service_parameters=dict(headers))


def _result(name: str, call: ToolCall, found: a2a.Task | a2a.Message | None) -> ToolResult:
    if found is None:
        return tool_error(call, f"the agent {name} answered nothing")
    if isinstance(found, a2a.Message):
        return ToolResult(call_id=call.call_id, name=call.name, content=_text(found.parts))
    said = _text(found.status.message.parts) if found.status.HasField("message") else ""
    state = a2a.TaskState.Name(found.status.state)
    if found.status.state == a2a.TaskState.TASK_STATE_COMPLETED:
        answer = "\n".join(_text(artifact.parts) for artifact in found.artifacts)
        return ToolResult(call_id=call.call_id, name=call.name, content=answer or said)
    if found.status.state in ENDED:
        return tool_error(call, f"the agent {name}'s task ended {state}: {said}".rstrip(": "))
    return ToolResult(
        call_id=call.call_id,
        name=call.name,
        content=f"The agent {name} has not answered ({state}); it says: {said or '(nothing)'}",
    )


def _text(parts: Iterable[a2a.Part]) -> str:
    pieces = []
    for part in parts:
        kind = part.WhichOneof("content")
        if kind == "text":
            pieces.append(part.text)
        elif kind == "data":
            pieces.append(str(json_format.MessageToJson(part.data, indent=None)))
    return "\n".join(pieces)
