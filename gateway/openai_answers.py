"""What the two OpenAI-shaped doors (Chat Completions, Responses) share: the agent a
`model` names, and a turn's answer read their way (its reply, the client tool calls it
waits for, its text as it comes, the headers that name the thread and run).

Each door builds a `TurnPlan` (gateway/turn.py) from its own request shape and writes
the answer in its own shape from the turn.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from actors.engine.agents import AgentCatalog
from actors.engine.messages import AssistantText, Message, ToolResult
from actors.threads.contract import (
    RunView,
)
from gateway.auth import Caller
from gateway.deps import THREAD_HEADER
from gateway.problems import ModelNotFound
from gateway.run_stream import SSE_HEADERS, parsed_frame, stream_run
from gateway.thread_client import ThreadClient
from gateway.turn import Turn


def agent_of(model: str, catalog: AgentCatalog) -> tuple[str, str | None]:
    """`model` as an agent and this turn's recipe: `support` or `support@<recipe>`."""
    agent, _, recipe = model.partition("@")
    if agent not in catalog.names():
        raise ModelNotFound(f"no agent named {agent!r}: GET /v1/models lists them")
    return agent, recipe or None


def headers_of(turn: Turn) -> dict[str, str]:
    """Every answer names the thread and the run behind it."""
    return {THREAD_HEADER: turn.thread_id, "threadhost-run-id": turn.answer.run.run_id}


def streamed(turn: Turn, events: AsyncIterator[str]) -> StreamingResponse:
    """A door's server-sent events for a turn; its listener closes with the stream."""
    listener = turn.listener
    assert listener is not None

    async def sent() -> AsyncIterator[str]:
        try:
            async for event in events:
                yield event
        finally:
            listener.close()

    return StreamingResponse(
        sent(), media_type="text/event-stream", headers={**SSE_HEADERS, **headers_of(turn)}
    )


def reply_of(messages: list[Message], submitted: set[str]) -> str | None:
    """The assistant's text of a turn: after the tool results it submitted, if any; the
    texts of its model calls joined by a blank line."""
    start = 0
    for index, message in enumerate(messages):
        if isinstance(message, ToolResult) and message.call_id in submitted:
            start = index + 1
    texts = [m.text for m in messages[start:] if isinstance(m, AssistantText)]
    return "\n\n".join(texts) if texts else None


def answer_of(run: RunView, messages: list[Message], submitted: set[str]) -> str | None:
    """What a door answers with: a typed run's validated output as JSON, else its text."""
    if run.output is not None:
        return json.dumps(run.output, ensure_ascii=False)
    return reply_of(messages, submitted)


def typed_turn(turn: Turn) -> bool:
    """Whether the turn's answer must match a schema (it then comes whole, not in
    pieces: an answer the schema refuses is not the answer)."""
    return turn.answer.run.output_schema is not None


def client_calls(run: RunView) -> list[tuple[str, str, str]]:
    """The client tool calls a run waits for: (call id, name, arguments)."""
    return [
        (a.call_id, a.tool, a.arguments) for a in run.required_action if a.type == "tool_result"
    ]


async def text_as_it_comes(
    client: ThreadClient, caller: Caller, turn: Turn, heartbeat: float
) -> AsyncIterator[str]:
    """The turn's text, in the pieces it comes in (token deltas; a step's whole text when
    none came), with a blank line between model calls; ends when the run stops."""
    assert turn.listener is not None
    sent, step_with_text = 0, -1
    async for frame in stream_run(
        client,
        turn.listener.queue,
        caller.owner,
        turn.thread_id,
        turn.answer.run.run_id,
        turn.answer.first_seq - 1,
        heartbeat,
    ):
        event, data = parsed_frame(frame)
        if event == "token.delta":
            if data["step"] != step_with_text:
                if sent:
                    yield "\n\n"
                step_with_text, sent = data["step"], sent + 1
            yield data["text"]
        elif event == "step.completed" and data["data"]["step"] != step_with_text:
            for message in data["data"]["messages"]:
                if message["kind"] == "assistant_text" and message["text"]:
                    yield ("\n\n" if sent else "") + message["text"]
                    sent += 1
