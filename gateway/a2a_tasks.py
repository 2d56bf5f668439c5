"""A2A's shapes of threadhost's things, with the official SDK's types: an agent as its
card, a run as a task (its thread the task's context), a run's events as task updates,
and an A2A message as what a turn takes (its text, or the answers a waiting run needs).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from a2a.types import a2a_pb2 as a2a
from a2a.utils.errors import ContentTypeNotSupportedError, InvalidParamsError
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Value
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import ValidationError

from actors.engine.agents import AgentDefinition
from actors.engine.messages import AssistantText, Message, ToolCall, ToolResult, UserText
from actors.engine.pauses import Answer, Approval, Submission, submissions_adapter
from actors.engine.run import question_of
from actors.engine.text import text_problem
from actors.engine.tool_set import ASK_USER
from actors.threads.contract import RunView
from threadhost.common.a2a_tasks import TASK_STATES, task_id

TEXT, JSON = "text/plain", "application/json"


def card(agent: AgentDefinition, url: str, bearer: bool, push: bool) -> a2a.AgentCard:
    """The agent's card: one skill, the agent itself, tagged with its tools."""
    description = agent.description or _first_line(agent.system_prompt) or agent.name
    found = a2a.AgentCard(
        name=agent.name,
        description=description,
        version=str(agent.version),
        supported_interfaces=[
            a2a.AgentInterface(url=url, protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=a2a.AgentCapabilities(streaming=True, push_notifications=push),
        default_input_modes=[TEXT, JSON],
        default_output_modes=[TEXT, JSON],
        skills=[
            a2a.AgentSkill(
                id=agent.name,
                name=agent.name,
                description=description,
                tags=agent.tool_names() or [agent.name],
                input_modes=[TEXT, JSON],
                output_modes=[TEXT, JSON],
            )
        ],
    )
    if bearer:
        found.security_schemes["bearer"].CopyFrom(
            a2a.SecurityScheme(
                http_auth_security_scheme=a2a.HTTPAuthSecurityScheme(
                    scheme="Bearer", bearer_format="JWT"
                )
            )
        )
        requirement = a2a.SecurityRequirement()
        requirement.schemes["bearer"].SetInParent()
        found.security_requirements.append(requirement)
    return found


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0][:500]


def as_dict(message: Any) -> dict[str, Any]:
    """A proto message as the JSON the protocol sends (camelCase names)."""
    return json_format.MessageToDict(message)


# --- what comes in --------------------------------------------------------------------


def text_of(message: a2a.Message) -> str:
    """The message's text parts, joined; a data part counts as its JSON; files are
    refused (threadhost's messages are text)."""
    pieces = []
    for n, part in enumerate(message.parts):
        kind = part.WhichOneof("content")
        if kind == "text":
            piece = part.text
        elif kind == "data":
            piece = json.dumps(json_format.MessageToDict(part.data), ensure_ascii=False)
        else:
            raise ContentTypeNotSupportedError(
                message=f"parts of kind {kind!r} are not taken: text and data only"
            )
        if (problem := text_problem(piece)) is not None:
            raise InvalidParamsError(message=f"message.parts[{n}]: {problem}")
        pieces.append(piece)
    return "\n".join(pieces)


def answers_of(message: a2a.Message, run: RunView) -> list[Submission]:
    """A message to a task that needs input, as the answers its run waits for: a data
    part `{"actions": [...]}` gives them as /v1/threads/{id}/runs/{run}/resume takes
    them; otherwise the text answers every question, and decides every approval
    ("approve", "approved", "yes" approve; anything else denies, and is the reason)."""
    for part in message.parts:
        if part.WhichOneof("content") == "data":
            data = json_format.MessageToDict(part.data)
            if isinstance(data, dict) and "actions" in data:
                try:
                    return submissions_adapter.validate_python(data["actions"])
                except ValidationError as exc:
                    detail = exc.errors()[0]["msg"]
                    raise InvalidParamsError(message=f"actions: {detail}") from None
    text = text_of(message).strip()
    approve = text.lower().rstrip(".!") in ("approve", "approved", "yes", "y", "ok")
    found: list[Submission] = []
    for action in run.required_action:
        if action.type == "input":
            found.append(Answer(call_id=action.call_id, answer=text))
        elif action.type == "approval":
            found.append(
                Approval(
                    call_id=action.call_id,
                    approved=approve,
                    reason=None if approve or not text else text,
                )
            )
        elif action.type == "tool_result":
            raise InvalidParamsError(
                message=f"the task waits for the result of the client tool {action.tool}: "
                'send it as a data part {"actions": [{"type": "tool_result", ...}]}'
            )
    return found


# --- what goes out --------------------------------------------------------------------


def _timestamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def status_of(run: RunView) -> a2a.TaskStatus:
    """The task's state, with a message saying what it waits for, or why it failed."""
    status = a2a.TaskStatus(
        state=a2a.TaskState.Value(TASK_STATES[run.status]), timestamp=_timestamp(run.updated_at)
    )
    said = _waits_for(run) if run.status == "requires_action" else run.reason
    if said:
        status.message.CopyFrom(_agent_message(run, said))
    return status


def _waits_for(run: RunView) -> str:
    lines = []
    for action in run.required_action:
        if action.type == "input":
            lines.append(action.question or action.arguments)
        elif action.type == "approval":
            lines.append(f"Approve {action.tool}({action.arguments})? Answer approve, or why not.")
        elif action.type == "tool_result":
            lines.append(f"The result of {action.tool}({action.arguments}), please.")
        else:
            lines.append(f"Waiting for the agent {action.agent}.")
    return "\n".join(lines)


def _agent_message(run: RunView, text: str, message_id: str = "status") -> a2a.Message:
    return a2a.Message(
        message_id=f"{run.run_id}.{message_id}",
        context_id=run.thread_id,
        task_id=task_id(run.thread_id, run.run_id),
        role=a2a.Role.ROLE_AGENT,
        parts=[a2a.Part(text=text)],
    )


def answer_artifact(run: RunView, text: str | None) -> a2a.Artifact | None:
    """A completed run's answer: its text, and a typed run's output as a data part."""
    parts = [a2a.Part(text=text, media_type=TEXT)] if text else []
    if run.output is not None:
        value = Value()
        json_format.ParseDict(run.output, value)
        parts.append(a2a.Part(data=value, media_type=JSON))
    if not parts:
        return None
    return a2a.Artifact(artifact_id="answer", name="answer", parts=parts)


def task_of(
    run: RunView, messages: list[Message] | None = None, history_length: int | None = None
) -> a2a.Task:
    """The run as a task: its status, its answer once completed, its history (the run's
    text messages, the last `history_length` of them)."""
    task = a2a.Task(
        id=task_id(run.thread_id, run.run_id), context_id=run.thread_id, status=status_of(run)
    )
    said = _conversation(messages or [])
    if run.status == "completed":
        last = next((text for role, text in reversed(said) if role == a2a.Role.ROLE_AGENT), None)
        artifact = answer_artifact(run, last)
        if artifact is not None:
            task.artifacts.append(artifact)
    if history_length is not None:
        said = said[-history_length:] if history_length else []
    for n, (role, text) in enumerate(said):
        task.history.append(
            a2a.Message(
                message_id=f"{run.run_id}.{n}",
                context_id=run.thread_id,
                task_id=task.id,
                role=role,
                parts=[a2a.Part(text=text)],
            )
        )
    return task


def _conversation(messages: list[Message]) -> list[tuple[Any, str]]:
    """The run's messages as a conversation: the user's and the agent's texts, and each
    question the agent asked (`ask_user`) with its answer."""
    said: list[tuple[Any, str]] = []
    for message in messages:
        if isinstance(message, UserText):
            said.append((a2a.Role.ROLE_USER, message.text))
        elif isinstance(message, AssistantText):
            said.append((a2a.Role.ROLE_AGENT, message.text))
        elif isinstance(message, ToolCall) and message.name == ASK_USER:
            said.append((a2a.Role.ROLE_AGENT, question_of(message.arguments)))
        elif isinstance(message, ToolResult) and message.name == ASK_USER:
            said.append((a2a.Role.ROLE_USER, message.content))
    return said


def status_update(run: RunView) -> a2a.TaskStatusUpdateEvent:
    return a2a.TaskStatusUpdateEvent(
        task_id=task_id(run.thread_id, run.run_id), context_id=run.thread_id, status=status_of(run)
    )


def text_update(run: RunView, text: str, first: bool) -> a2a.TaskArtifactUpdateEvent:
    """A piece of the answer as it comes (appended to the artifact after the first)."""
    return a2a.TaskArtifactUpdateEvent(
        task_id=task_id(run.thread_id, run.run_id),
        context_id=run.thread_id,
        artifact=a2a.Artifact(artifact_id="answer", name="answer", parts=[a2a.Part(text=text)]),
        append=not first,
        last_chunk=False,
    )
