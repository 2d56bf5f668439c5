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
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from actors.contract import (
    GATEWAY_KEY_PREFIX,
    CreateThread,
    DescribeThread,
    ImportHistory,
    RunAnswer,
    RunView,
)
from actors.contract import PostMessage as PostMessageRequest
from actors.contract import ResumeRun as ResumeRequest
from actors.engine.agents import AgentCatalog
from actors.engine.messages import AssistantText, Message, ToolCall, ToolResult, UserText
from actors.engine.pauses import ToolOutput
from actors.engine.tool_set import ClientTool
from gateway.auth import Caller
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
)
from gateway.problems import Problem, problem_responses
from gateway.run_stream import SSE_HEADERS, stream_run
from gateway.thread_client import Attempts, ThreadClient, Unreachable
from gateway.threads import CallerDep, ClientDep, SettingsDep, _in_slot, _wait_for_run, admit
from threadhost.ids import new_thread_id


async def _admitted(request: Request, caller: CallerDep, settings: SettingsDep,
                    client: ClientDep) -> None:
    """Rate limits as on /v1/threads: a chat completion starts (or resumes) a run."""
    await admit(client, caller, settings, starts_run=request.method == "POST")


router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(_admitted)],
                   responses=problem_responses(400, 401, 404, 409, 422, 429, 500, 503))
THREAD_HEADER = "threadhost-thread-id"
FINISH = {"completed": "stop", "incomplete": "length", "cancelled": "stop"}


def _catalog(request: Request) -> AgentCatalog:
    return request.app.state.agent_catalog


@router.get("/models", response_model=ModelList)
async def list_models(request: Request) -> ModelList:
    """The agents, each a model: `model` in a chat completion names one."""
    return ModelList(data=[ModelView(id=name) for name in _catalog(request).names()])


@router.post("/chat/completions", response_model=ChatCompletion,
             responses={200: {"content": {"text/event-stream": {}}}})
async def chat_completions(
        body: ChatCompletionRequest, request: Request, client: ClientDep, caller: CallerDep,
        settings: SettingsDep,
        thread_header: Annotated[str | None, Header(alias=THREAD_HEADER,
                                                    pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> Response:
    """A turn of an agent's thread, in the Chat Completions API's terms, streamed
    (`stream: true`) or not."""
    agent, _, recipe = body.model.partition("@")
    if agent not in _catalog(request).names():
        raise Problem(404, "model_not_found", "Unknown model",
                      f"no agent named {agent!r}: GET /v1/models lists them")
    thread_id = thread_header or (body.metadata or {}).get("thread_id")
    said = [m for m in body.messages if m.role not in ("system", "developer")]
    last_answer = max((i for i, m in enumerate(said) if m.role == "assistant"), default=-1)
    before, turn = said[:last_answer + 1], said[last_answer + 1:]
    roles = {m.role for m in turn}
    if roles not in ({"user"}, {"tool"}):
        raise Problem(400, "invalid_request", "Nothing to answer",
                      "messages must end with the user's message(s), or with the results of "
                      "the tool calls of the last assistant message, not both")
    if roles == {"tool"} and thread_id is None:
        raise Problem(400, "invalid_request", "No thread to resume",
                      f"tool results go to the thread that asked for them: name it in the "
                      f"{THREAD_HEADER} header")
    key = idempotency_key or f"{GATEWAY_KEY_PREFIX}{uuid.uuid4().hex}"
    if thread_id is None:
        thread_id = await _new_thread(client, caller, agent)
        earlier = before + turn[:-1]
    else:
        earlier = turn[:-1] if roles == {"user"} else []
    if earlier:
        await client.call(thread_id, ImportHistory(messages=_as_history(earlier),
                                                   owner=caller.owner))
    if roles == {"user"}:
        submitted: set[str] = set()
        call = PostMessageRequest(
            text=turn[-1].text, model=recipe or None, owner=caller.owner, idempotency_key=key,
            client_tools=[ClientTool(name=t.function.name, description=t.function.description,
                                     parameters=t.function.parameters) for t in body.tools],
            wait=not body.stream)
    else:
        described = await client.call(thread_id, DescribeThread(owner=caller.owner))
        if described.thread.active_run is None:
            raise Problem(409, "run-not-waiting", "Nothing waits for these tool results",
                          "the thread has no run waiting for client tools")
        submitted = {m.tool_call_id or "" for m in turn}
        call = ResumeRequest(run_id=described.thread.active_run, owner=caller.owner,
                             actions=[ToolOutput(call_id=m.tool_call_id or "", output=m.text)
                                      for m in turn], wait=not body.stream)

    async def take() -> RunAnswer:
        try:
            return await client.call(thread_id, call, Attempts())
        except Unreachable as unreachable:
            if isinstance(call, PostMessageRequest):
                raise unreachable.unsure_of_turn(key) from None
            raise

    headers = {THREAD_HEADER: thread_id}
    if body.stream:
        listener = request.app.state.run_events.listen(thread_id)
        try:
            answer = await _in_slot(client, caller, settings, take)
        except BaseException:
            listener.close()
            raise
        headers["threadhost-run-id"] = answer.run.run_id
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        async def chunks() -> AsyncIterator[str]:
            try:
                async for chunk in _stream(client, caller, thread_id, answer, listener.queue,
                                           body.model, include_usage,
                                           settings.sse_heartbeat_seconds):
                    yield chunk
            finally:
                listener.close()

        return StreamingResponse(chunks(), media_type="text/event-stream",
                                 headers={**SSE_HEADERS, **headers})
    answer = await _in_slot(client, caller, settings, take)
    if not answer.run.stopped:
        answer = await _wait_for_run(client, caller, thread_id, answer.run,
                                     settings.run_wait_seconds)
    headers["threadhost-run-id"] = answer.run.run_id
    completion = _completion(answer, body.model, thread_id, submitted)
    return JSONResponse(completion.model_dump(mode="json"), headers=headers)


async def _new_thread(client: ThreadClient, caller: Caller, agent: str) -> str:
    thread = (await client.call(new_thread_id(), CreateThread(
        agent=agent, owner=caller.owner, metadata={"door": "openai"}))).thread
    await client.owner_call(caller.owner, "AddThread", {
        "id": thread.id, "agent": thread.agent, "created_at": thread.created_at.isoformat(),
        "metadata": thread.metadata})
    return thread.id


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
                history.append(ToolCall(call_id=call.id, name=call.function.name,
                                        arguments=call.function.arguments))
        elif m.role == "tool":
            call_id = m.tool_call_id or ""
            history.append(ToolResult(call_id=call_id, name=names.get(call_id, m.name or ""),
                                      content=m.text))
    return history


def _reply(messages: list[Message], submitted: set[str]) -> str | None:
    """The assistant's text of this call: after the tool results it submitted, if any."""
    start = 0
    for index, message in enumerate(messages):
        if isinstance(message, ToolResult) and message.call_id in submitted:
            start = index + 1
    texts = [m.text for m in messages[start:] if isinstance(m, AssistantText)]
    return "\n\n".join(texts) if texts else None


def _client_calls(run: RunView) -> list[ChatToolCall]:
    return [ChatToolCall(id=a.call_id, function=FunctionCall(name=a.tool, arguments=a.arguments))
            for a in run.required_action if a.type == "tool_result"]


def _info(run: RunView, thread_id: str) -> ThreadhostInfo:
    return ThreadhostInfo(thread_id=thread_id, run_id=run.run_id, status=run.status,
                          required_action=[a.model_dump() for a in run.required_action])


def _usage(run: RunView) -> CompletionUsage:
    prompt, completion = run.usage.get("input_tokens", 0), run.usage.get("output_tokens", 0)
    return CompletionUsage(prompt_tokens=prompt, completion_tokens=completion,
                           total_tokens=prompt + completion)


def _completion(answer: RunAnswer, model: str, thread_id: str,
                submitted: set[str]) -> ChatCompletion:
    run = answer.run
    if run.status == "failed":
        raise Problem(500, "run_failed", "The run failed", run.reason or "",
                      thread_id=thread_id, run_id=run.run_id)
    if answer.messages is None:  # still running after the wait: the client comes back
        raise Problem(504, "run_still_going", "The run goes on",
                      f"it did not end within the wait; read it at /v1/threads/{thread_id}"
                      f"/runs/{run.run_id}", thread_id=thread_id, run_id=run.run_id)
    calls = _client_calls(run)
    finish = "tool_calls" if calls else FINISH.get(run.status, "stop")
    return ChatCompletion(
        id=f"chatcmpl-{run.run_id}", created=int(time.time()), model=model,
        choices=[Choice(message=ResponseMessage(content=_reply(answer.messages, submitted),
                                                tool_calls=calls or None),
                        finish_reason=finish)],  # type: ignore[arg-type]
        usage=_usage(run), threadhost=_info(run, thread_id))


async def _stream(client: ThreadClient, caller: Caller, thread_id: str, answer: RunAnswer,
                  live: Any, model: str, include_usage: bool,
                  heartbeat: float) -> AsyncIterator[str]:
    """The run's events as chat.completion.chunk objects, then `[DONE]`."""
    run_id, created = answer.run.run_id, int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> str:
        body = {"id": f"chatcmpl-{run_id}", "object": "chat.completion.chunk",
                "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **more}
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    texts_sent, step_with_text = 0, -1
    async for frame in stream_run(client, live, caller.owner, thread_id, run_id,
                                  answer.first_seq - 1, heartbeat):
        event, data = _parsed(frame)
        if event == "token.delta":
            if data["step"] != step_with_text:
                if texts_sent:
                    yield chunk({"content": "\n\n"})
                step_with_text, texts_sent = data["step"], texts_sent + 1
            yield chunk({"content": data["text"]})
        elif event == "step.completed" and data["data"]["step"] != step_with_text:
            for message in data["data"]["messages"]:
                if message["kind"] == "assistant_text" and message["text"]:
                    yield chunk({"content": ("\n\n" if texts_sent else "") + message["text"]})
                    texts_sent += 1
    run = (await client.read_run(thread_id, run_id, caller.owner)).run
    if run.status == "failed":
        error = {"message": f"the run failed: {run.reason}", "type": "server_error",
                 "code": "run_failed"}
        yield f"data: {json.dumps({'error': error})}\n\n"
        return
    calls = _client_calls(run)
    for index, call in enumerate(calls):
        yield chunk({"tool_calls": [{"index": index, **call.model_dump()}]})
    finish = "tool_calls" if calls else FINISH.get(run.status, "stop")
    yield chunk({}, finish, threadhost=_info(run, thread_id).model_dump())
    if include_usage:
        body = {"id": f"chatcmpl-{run_id}", "object": "chat.completion.chunk",
                "created": created, "model": model, "choices": [],
                "usage": _usage(run).model_dump()}
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"


def _parsed(frame: str) -> tuple[str | None, dict[str, Any]]:
    """A server-sent event of the run's stream (gateway/run_stream.py): its name and data."""
    event, data = None, {}
    for line in frame.splitlines():
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            data = json.loads(line[len("data: "):])
    return event, data
