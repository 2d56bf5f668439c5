"""threadhost's things in A2A's words, in process: runs as tasks, messages as turns, an
agent as its card, a push notification's body, a remote agent's answer as a tool result.
Each checked with the official SDK's own types (a2a-sdk), never a reading of our own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from a2a.types import a2a_pb2 as a2a
from a2a.utils.errors import ContentTypeNotSupportedError, InvalidParamsError
from google.protobuf import json_format
from pydantic import ValidationError

from actors.engine.a2a_tools import _result
from actors.engine.agents import AgentDefinition
from actors.engine.messages import AssistantText, ToolCall, UserText
from actors.engine.run import PendingAction
from actors.engine.tool_sources import RemoteAgentDefinition
from actors.threads.contract import RunView
from gateway.a2a_tasks import answers_of, as_dict, card, task_of, text_of
from threadhost.common.a2a_tasks import parse_task_id, push_notification, task_id

NOW = datetime(2026, 12, 8, tzinfo=UTC)


def run(status: str, **more: object) -> RunView:
    return RunView(
        run_id="run_1",
        thread_id="th_1",
        status=status,
        agent={"name": "support", "version": 1, "model": "scripted"},
        steps=1,
        usage={},
        cost_usd=0.0,
        first_message=0,
        next_seq=3,
        created_at=NOW,
        updated_at=NOW,
        model_calls=[],
        **more,  # type: ignore[arg-type]
    )


def test_a_completed_run_is_a_completed_task_with_its_answer_and_typed_output() -> None:
    task = task_of(
        run("completed", output={"order_id": "1001"}),
        [UserText(text="Where?"), AssistantText(text="Shipped.")],
    )
    assert task.id == "th_1.run_1" and task.context_id == "th_1"
    assert task.status.state == a2a.TaskState.TASK_STATE_COMPLETED
    [answer] = task.artifacts
    assert answer.parts[0].text == "Shipped."
    assert json_format.MessageToDict(answer.parts[1].data) == {"order_id": "1001"}
    assert [m.role for m in task.history] == [a2a.Role.ROLE_USER, a2a.Role.ROLE_AGENT]
    # The protocol's JSON, read back by the SDK: nothing of ours that it does not know.
    assert json_format.ParseDict(as_dict(task), a2a.Task()) == task


@pytest.mark.parametrize(
    "status, state",
    [
        ("queued", a2a.TaskState.TASK_STATE_SUBMITTED),
        ("running", a2a.TaskState.TASK_STATE_WORKING),
        ("failed", a2a.TaskState.TASK_STATE_FAILED),
        ("incomplete", a2a.TaskState.TASK_STATE_FAILED),
        ("cancelled", a2a.TaskState.TASK_STATE_CANCELED),
    ],
)
def test_each_run_status_is_a_task_state(status: str, state: int) -> None:
    assert task_of(run(status, reason="max_steps: 16")).status.state == state


def test_a_waiting_run_needs_input_and_a_message_answers_it() -> None:
    waiting = run(
        "requires_action",
        required_action=[
            PendingAction(
                type="input", call_id="c1", tool="ask_user", arguments="{}", question="Which?"
            ),
            PendingAction(type="approval", call_id="c2", tool="cancel_order", arguments="{}"),
        ],
    )
    task = task_of(waiting)
    assert task.status.state == a2a.TaskState.TASK_STATE_INPUT_REQUIRED
    assert "Which?" in task.status.message.parts[0].text
    assert "cancel_order" in task.status.message.parts[0].text
    said = a2a.Message(parts=[a2a.Part(text="approve")])
    answer, approval = answers_of(said, waiting)
    assert answer.answer == "approve" and approval.approved is True
    denied = answers_of(a2a.Message(parts=[a2a.Part(text="Not that one")]), waiting)[1]
    assert denied.approved is False and denied.reason == "Not that one"


def test_a_file_is_not_text_and_text_is_only_text() -> None:
    with pytest.raises(ContentTypeNotSupportedError):
        text_of(a2a.Message(parts=[a2a.Part(url="https://example.com/x.pdf")]))
    with pytest.raises(InvalidParamsError, match=r"message.parts\[1\]: a NUL character"):
        text_of(a2a.Message(parts=[a2a.Part(text="fine"), a2a.Part(text="not\x00fine")]))
    said = "Dates 2026-12-08T00:00:00+01:00, emoji 🌱, RTL שלום"
    assert text_of(a2a.Message(parts=[a2a.Part(text=said)])) == said


def test_task_ids_name_a_thread_and_a_run_and_nothing_else() -> None:
    assert parse_task_id(task_id("th_1", "run_2")) == ("th_1", "run_2")
    for bad in ("th_1", "th_1.run.2", "../x.y", "th_1.", ""):
        assert parse_task_id(bad) is None


def test_a_push_notification_is_a_stream_response_the_sdk_reads() -> None:
    body = push_notification(
        {"thread_id": "th_1", "run_id": "run_1", "status": "requires_action"}, NOW
    )
    update = json_format.ParseDict(body, a2a.StreamResponse()).status_update
    assert update.task_id == "th_1.run_1"
    assert update.status.state == a2a.TaskState.TASK_STATE_INPUT_REQUIRED


def test_a_card_names_the_agent_its_tools_and_the_bearer_scheme() -> None:
    agent = AgentDefinition(name="support", system_prompt="Helps.\nMore.", tools=["query_order"])
    found = card(agent, "https://h/v1/a2a/support", bearer=True, push=False)
    read = json_format.ParseDict(as_dict(found), a2a.AgentCard())
    assert read.description == "Helps." and list(read.skills[0].tags) == ["query_order"]
    assert read.security_schemes["bearer"].http_auth_security_scheme.scheme == "Bearer"
    assert not read.capabilities.push_notifications


def test_a_remote_agents_answer_is_the_tools_result() -> None:
    call = ToolCall(call_id="c1", name="ask_team", arguments='{"input": "hi"}')
    done = a2a.Task(
        status=a2a.TaskStatus(state=a2a.TaskState.TASK_STATE_COMPLETED),
        artifacts=[a2a.Artifact(parts=[a2a.Part(text="All good.")])],
    )
    assert _result("team", call, done).content == "All good."
    failed = a2a.Task(
        status=a2a.TaskStatus(
            state=a2a.TaskState.TASK_STATE_FAILED,
            message=a2a.Message(parts=[a2a.Part(text="no such order")]),
        )
    )
    result = _result("team", call, failed)
    assert result.is_error and "no such order" in result.content
    asks = a2a.Task(
        status=a2a.TaskStatus(
            state=a2a.TaskState.TASK_STATE_INPUT_REQUIRED,
            message=a2a.Message(parts=[a2a.Part(text="Which order?")]),
        )
    )
    assert "Which order?" in _result("team", call, asks).content


def test_a_remote_agent_is_reached_one_way() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        RemoteAgentDefinition(name="x", url="https://a", app_id="b")
    with pytest.raises(ValidationError, match="plain path"):
        RemoteAgentDefinition(name="x", app_id="b", path="../admin")
