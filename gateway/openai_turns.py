"""A turn asked through an OpenAI-shaped door (Chat Completions, Responses), in
threadhost's terms: which thread, what it stores first, and whether the turn starts a run
with a user message or resumes one with the results of client tool calls.

Both doors build a `TurnPlan` from their own request shape, take it here, and write the
answer in their own shape from the run (and, streamed, from the text as it comes).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import StreamingResponse

from actors.engine.agents import AgentCatalog
from actors.engine.messages import AssistantText, Message, ToolResult
from actors.engine.pauses import ToolOutput
from actors.engine.tool_set import ClientTool
from actors.threads.contract import (
    GATEWAY_KEY_PREFIX,
    CreateThread,
    ImportHistory,
    RunAnswer,
    RunView,
)
from actors.threads.contract import PostMessage as PostMessageRequest
from actors.threads.contract import ResumeRun as ResumeRequest
from gateway.auth import Caller
from gateway.problems import Problem
from gateway.run_stream import SSE_HEADERS, Listener, stream_run
from gateway.thread_client import Attempts, ThreadClient, Unreachable
from gateway.threads import _in_slot, _wait_for_run, open_thread
from threadhost.common.ids import ID_PATTERN
from threadhost.common.settings import Settings

THREAD_HEADER = "threadhost-thread-id"
# The thread both OpenAI doors continue (a caller's retry key is every door's
# IdempotencyKey, gateway/threads.py).
ThreadHeader = Annotated[str | None, Header(alias=THREAD_HEADER, pattern=ID_PATTERN)]


def agent_of(model: str, catalog: AgentCatalog) -> tuple[str, str | None]:
    """`model` as an agent and this turn's recipe: `support` or `support@<recipe>`."""
    agent, _, recipe = model.partition("@")
    if agent not in catalog.names():
        raise Problem(404, "model_not_found", "Unknown model",
                      f"no agent named {agent!r}: GET /v1/models lists them")
    return agent, recipe or None


@dataclass
class TurnPlan:
    agent: str
    # This turn's model recipe, if the door's `model` named one.
    recipe: str | None
    # The thread to continue; None starts one (its metadata says which door).
    thread_id: str | None
    door: str
    # Stored first, as they are: a new thread's history, or user messages before the last.
    earlier: list[Message] = field(default_factory=list)
    # Either a user message that starts a run...
    text: str | None = None
    client_tools: list[ClientTool] = field(default_factory=list)
    # ...or the results of the client tool calls the thread's run waits for.
    outputs: list[ToolOutput] = field(default_factory=list)
    stream: bool = False
    idempotency_key: str | None = None


@dataclass
class Turn:
    thread_id: str
    answer: RunAnswer
    # The call ids whose results this turn submitted: its text is what follows them.
    submitted: set[str]
    listener: Listener | None


async def take_turn(client: ThreadClient, caller: Caller, settings: Settings, plan: TurnPlan,
                    request: Request | None = None) -> Turn:
    """Starts or resumes the run; not streamed, waits until it stops (or the wait ends)."""
    if plan.text is not None and not plan.text.strip():
        raise Problem(422, "invalid_request", "Empty message",
                      "the last user message has no text")
    if plan.text is not None and len(plan.text) > settings.max_message_chars:
        raise Problem(422, "invalid_request", "Message too long",
                      f"the last user message is {len(plan.text)} characters; the limit is "
                      f"{settings.max_message_chars}")
    # One key for every call of the turn (the caller's, or the gateway's own): a retry
    # of the request finds the thread, the imported history and the run of the first.
    key = plan.idempotency_key or f"{GATEWAY_KEY_PREFIX}{uuid.uuid4().hex}"
    thread_id = plan.thread_id
    if thread_id is None:
        if plan.outputs:
            raise Problem(400, "invalid_request", "No thread to resume",
                          "tool results go to the thread that asked for them: name it")
        thread_id = (await open_thread(client, caller, key, CreateThread(
            agent=plan.agent, owner=caller.owner, metadata={"door": plan.door}))).id
    if plan.earlier:
        await client.call(thread_id, ImportHistory(messages=plan.earlier, owner=caller.owner,
                                                   idempotency_key=key))
    call: PostMessageRequest | ResumeRequest
    if plan.text is not None:
        call = PostMessageRequest(text=plan.text, model=plan.recipe, owner=caller.owner,
                                  idempotency_key=key, client_tools=plan.client_tools,
                                  wait=not plan.stream)
    else:  # the thread's waiting run, whichever it is
        call = ResumeRequest(run_id=None, owner=caller.owner, actions=plan.outputs,
                             wait=not plan.stream, idempotency_key=key)
    thread = thread_id

    async def take() -> RunAnswer:
        try:
            return await client.call(thread, call, Attempts())
        except Unreachable as unreachable:
            raise unreachable.unsure_of_turn(key) from None

    submitted = {o.call_id for o in plan.outputs}
    # Streamed: listening before the call, so the run's first events are not missed.
    listener = (request.app.state.run_events.listen(thread_id, caller.owner)
                if plan.stream and request is not None else None)
    try:
        answer = await _in_slot(client, caller, settings, take)
    except BaseException:
        if listener is not None:
            listener.close()
        raise
    if listener is None and not answer.run.stopped:
        answer = await _wait_for_run(client, caller, thread_id, answer.run,
                                     settings.run_wait_seconds)
    return Turn(thread_id, answer, submitted, listener)


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

    return StreamingResponse(sent(), media_type="text/event-stream",
                             headers={**SSE_HEADERS, **headers_of(turn)})


def reply_of(messages: list[Message], submitted: set[str]) -> str | None:
    """The assistant's text of a turn: after the tool results it submitted, if any; the
    texts of its model calls joined by a blank line."""
    start = 0
    for index, message in enumerate(messages):
        if isinstance(message, ToolResult) and message.call_id in submitted:
            start = index + 1
    texts = [m.text for m in messages[start:] if isinstance(m, AssistantText)]
    return "\n\n".join(texts) if texts else None


def client_calls(run: RunView) -> list[tuple[str, str, str]]:
    """The client tool calls a run waits for: (call id, name, arguments)."""
    return [(a.call_id, a.tool, a.arguments) for a in run.required_action
            if a.type == "tool_result"]


async def text_as_it_comes(client: ThreadClient, caller: Caller, turn: Turn,
                           heartbeat: float) -> AsyncIterator[str]:
    """The turn's text, in the pieces it comes in (token deltas; a step's whole text when
    none came), with a blank line between model calls; ends when the run stops."""
    assert turn.listener is not None
    sent, step_with_text = 0, -1
    async for frame in stream_run(client, turn.listener.queue, caller.owner, turn.thread_id,
                                  turn.answer.run.run_id, turn.answer.first_seq - 1,
                                  heartbeat):
        event, data = _parsed(frame)
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


def _parsed(frame: str) -> tuple[str | None, dict[str, Any]]:
    """A server-sent event of the run's stream (gateway/run_stream.py): its name and data."""
    event, data = None, {}
    for line in frame.splitlines():
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            data = json.loads(line[len("data: "):])
    return event, data
