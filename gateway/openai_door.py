"""The OpenAI door: `POST /v1/chat/completions` and `GET /v1/models`, backed by threads.

`model` names an agent (`support`, or `support@anthropic:claude-haiku-4-5` for this turn's
model). The thread a call continues is named by the header `threadhost-thread-id` (or
`metadata.thread_id`); without one, each call starts a new thread, and every answer
names its thread in the same header. What the client sends up to its last `assistant`
message is what the thread has already (on a new thread, it is stored first, once); what
follows is the turn: user messages start a run, tool messages answer the client tool
calls a run waits for. docs/openai.md says it all.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from actors.engine.agents import AgentCatalog
from actors.engine.messages import AssistantText, Message, ToolCall, ToolResult, UserText
from actors.engine.pauses import ToolOutput
from actors.engine.tool_set import ClientTool
from actors.threads.contract import RunView
from gateway.auth import Caller
from gateway.deps import (
    THREAD_HEADER,
    CatalogDep,
    DoorDep,
    IdempotencyKey,
    ThreadHeader,
    admitted,
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
from gateway.openai_schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    ChatToolCall,
    Choice,
    CompletionUsage,
    FunctionCall,
    ModelList,
    ModelView,
    ResponseMessage,
    ThreadhostInfo,
    output_schema_of,
)
from gateway.problems import InvalidRequest, RunFailed, RunStillGoing, problem_responses
from gateway.thread_client import ThreadClient
from gateway.turn import Turn, TurnPlan, take_turn

# Its turn admits itself (gateway/turn.py); the model list is admitted as any request.
router = APIRouter(
    prefix="/v1",
    tags=["openai"],
    responses=problem_responses(400, 401, 404, 409, 413, 422, 429, 500, 503, 504),
)
FINISH = {"completed": "stop", "incomplete": "length", "cancelled": "stop"}


@router.get("/models", response_model=ModelList, dependencies=[Depends(admitted)])
async def list_models(catalog: CatalogDep) -> ModelList:
    """The agents, each a model: `model` in a chat completion names one."""
    return ModelList(data=[ModelView(id=name) for name in catalog.names()])


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionRequest,
    door: DoorDep,
    catalog: CatalogDep,
    thread_header: ThreadHeader = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A turn of an agent's thread, in the Chat Completions API's terms, streamed
    (`stream: true`) or not."""
    thread_id = thread_header or (body.metadata or {}).get("thread_id")
    plan = _plan(body, catalog, thread_id, idempotency_key)
    taken = await take_turn(door, plan)
    if taken.listener is not None:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        heartbeat = door.settings.sse_heartbeat_seconds
        return streamed(
            taken, _stream(door.client, door.caller, taken, body.model, include_usage, heartbeat)
        )
    completion = _completion(taken, body.model)
    return JSONResponse(completion.model_dump(mode="json"), headers=headers_of(taken))


def _plan(
    body: ChatCompletionRequest,
    catalog: AgentCatalog,
    thread_id: str | None,
    idempotency_key: str | None,
) -> TurnPlan:
    """The request as a turn: the messages after the last assistant message are the
    turn's (user text, or the results of its tool calls); on a new thread, the ones
    before it are its history."""
    agent, recipe = agent_of(body.model, catalog)
    said = [m for m in body.messages if m.role not in ("system", "developer")]
    last_answer = max((i for i, m in enumerate(said) if m.role == "assistant"), default=-1)
    before, turn = said[: last_answer + 1], said[last_answer + 1 :]
    roles = {m.role for m in turn}
    if roles not in ({"user"}, {"tool"}):
        raise InvalidRequest(
            title="Nothing to answer",
            status=400,
            detail="messages must end with the user's message(s), or with the results of "
            "the tool calls of the last assistant message, not both",
        )
    if roles == {"tool"} and thread_id is None:
        raise InvalidRequest(
            title="No thread to resume",
            status=400,
            detail=f"tool results go to the thread that asked for them: name it in the "
            f"{THREAD_HEADER} header",
        )
    earlier = (before if thread_id is None else []) + (turn[:-1] if roles == {"user"} else [])
    return TurnPlan(
        agent=agent,
        recipe=recipe,
        thread_id=thread_id,
        door="openai",
        earlier=_as_history(earlier),
        mode="stream" if body.stream else "wait",
        text_field="the last user message",
        idempotency_key=idempotency_key,
        output_schema=output_schema_of(body.response_format),
        text=turn[-1].text if roles == {"user"} else None,
        client_tools=[
            ClientTool(
                name=t.function.name,
                description=t.function.description or "",
                parameters=t.function.parameters,
            )
            for t in body.tools
        ],
        actions=[
            ToolOutput(call_id=m.tool_call_id or "", output=m.text)
            for m in turn
            if m.role == "tool"
        ],
    )


def _as_history(messages: list[ChatMessage]) -> list[Message]:
    """A client's earlier messages as the thread keeps them: user text, assistant text,
    its tool calls, and their results."""
    names: dict[str, str] = {}
    history: list[Message] = []
    for m in messages:
        if m.role == "user":
            history.append(UserText(text=m.text))
        elif m.role == "assistant":
            if m.text:
                history.append(AssistantText(text=m.text))
            for call in m.tool_calls or []:
                names[call.id] = call.function.name
                history.append(
                    ToolCall(
                        call_id=call.id, name=call.function.name, arguments=call.function.arguments
                    )
                )
        elif m.role == "tool":
            call_id = m.tool_call_id or ""
            history.append(
                ToolResult(call_id=call_id, name=names.get(call_id, m.name or ""), content=m.text)
            )
    return history


def _calls(run: RunView) -> list[ChatToolCall]:
    return [
        ChatToolCall(id=call_id, function=FunctionCall(name=name, arguments=arguments))
        for call_id, name, arguments in client_calls(run)
    ]


def _info(run: RunView, thread_id: str) -> ThreadhostInfo:
    return ThreadhostInfo(
        thread_id=thread_id,
        run_id=run.run_id,
        status=run.status,
        required_action=[a.model_dump() for a in run.required_action],
    )


def _usage(run: RunView) -> CompletionUsage:
    prompt, completion = run.usage.get("input_tokens", 0), run.usage.get("output_tokens", 0)
    return CompletionUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def ended_run(taken: Turn) -> RunView:
    """The run a turn stopped with; a failure, or a run still going, as the door's error."""
    run, thread_id = taken.answer.run, taken.thread_id
    if run.status == "failed":
        raise RunFailed(run.reason or "", thread_id=thread_id, run_id=run.run_id)
    if taken.answer.messages is None:  # still running after the wait: the client comes back
        raise RunStillGoing(
            f"it did not end within the wait; read it at /v1/threads/{thread_id}/runs/{run.run_id}",
            thread_id=thread_id,
            run_id=run.run_id,
        )
    return run


def _completion(taken: Turn, model: str) -> ChatCompletion:
    run = ended_run(taken)
    calls = _calls(run)
    finish = "tool_calls" if calls else FINISH.get(run.status, "stop")
    text = answer_of(run, taken.answer.messages or [], taken.submitted)
    return ChatCompletion(
        id=f"chatcmpl-{run.run_id}",
        created=int(time.time()),
        model=model,
        choices=[
            Choice(
                message=ResponseMessage(content=text, tool_calls=calls or None),
                finish_reason=finish,  # type: ignore[arg-type]
            )
        ],
        usage=_usage(run),
        threadhost=_info(run, taken.thread_id),
    )


async def _stream(
    client: ThreadClient,
    caller: Caller,
    taken: Turn,
    model: str,
    include_usage: bool,
    heartbeat: float,
) -> AsyncIterator[str]:
    """The run's text as chat.completion.chunk objects, then its end, then `[DONE]`."""
    run_id, created = taken.answer.run.run_id, int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> str:
        body = {
            "id": f"chatcmpl-{run_id}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **more,
        }
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    # A typed answer comes whole, once validated: the text of an answer the schema
    # refused is not the content.
    typed = typed_turn(taken)
    async for text in text_as_it_comes(client, caller, taken, heartbeat):
        if not typed:
            yield chunk({"content": text})
    run = (await client.read_run(taken.thread_id, run_id, caller.owner)).run
    if typed and run.output is not None:
        yield chunk({"content": json.dumps(run.output, ensure_ascii=False)})
    if run.status == "failed":
        error = {
            "message": f"the run failed: {run.reason}",
            "type": "server_error",
            "code": "run_failed",
        }
        yield f"data: {json.dumps({'error': error})}\n\n"
        return
    calls = _calls(run)
    for index, call in enumerate(calls):
        yield chunk({"tool_calls": [{"index": index, **call.model_dump()}]})
    finish = "tool_calls" if calls else FINISH.get(run.status, "stop")
    yield chunk({}, finish, threadhost=_info(run, taken.thread_id).model_dump())
    if include_usage:
        body = {
            "id": f"chatcmpl-{run_id}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _usage(run).model_dump(),
        }
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"
