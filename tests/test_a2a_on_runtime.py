"""The A2A door on the split stack, spoken to by the protocol's official client
(`a2a-sdk`): an agent's card, a task that completes, a context that continues its thread,
a streamed task, a task that needs input and is resumed, cancel, and a push notification
the receiver verifies (Standard Webhooks signature, the client's token, the body parsed
as the protocol's StreamResponse)."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.types import a2a_pb2 as a2a
from a2a.utils.errors import InvalidParamsError, TaskNotFoundError
from google.protobuf import json_format

from tests.conftest import TEST_AGENTS, Api, make_stack_config, wait_for
from tests.dapr_peers import local_secret_store
from threadhost.processes import Process, free_port
from threadhost.runtime import PROJECT_ROOT
from threadhost.stack import Stack

KEY = "whsec_" + base64.b64encode(b"an a2a push key of 32 bytes!!!!!").decode()


def _message(text: str, context: str = "", task: str = "") -> a2a.SendMessageRequest:
    return a2a.SendMessageRequest(
        message=a2a.Message(
            message_id=uuid.uuid4().hex,
            role=a2a.Role.ROLE_USER,
            context_id=context,
            task_id=task,
            parts=[a2a.Part(text=text)],
        )
    )


async def _client(url: str, agent: str, streaming: bool = False):  # type: ignore[no-untyped-def]
    http = httpx.AsyncClient(timeout=30)
    return await create_client(
        f"{url}/v1/a2a/{agent}", client_config=ClientConfig(streaming=streaming, httpx_client=http)
    )


async def _last_task(responses: AsyncIterator[a2a.StreamResponse]) -> a2a.Task:
    task = None
    async for response in responses:
        if response.HasField("task"):
            task = response.task
    assert task is not None
    return task


def _text(task: a2a.Task) -> str:
    return "".join(p.text for artifact in task.artifacts for p in artifact.parts)


def test_the_card_a_task_and_a_context_that_continues_its_thread(split_stack: Stack) -> None:
    url = split_stack.api.url
    card = httpx.get(f"{url}/v1/a2a/support/.well-known/agent-card.json").json()
    assert card["name"] == "support" and card["supportedInterfaces"][0]["url"].endswith(
        "/v1/a2a/support"
    )
    assert "query_order" in card["skills"][0]["tags"]
    assert httpx.get(f"{url}/.well-known/agent-card.json").json()["name"] == "assistant"

    async def scenario() -> tuple[a2a.Task, a2a.Task]:
        client = await _client(url, "assistant")
        first = await _last_task(client.send_message(_message("hello")))
        again = await _last_task(client.send_message(_message("again", first.context_id)))
        return first, again

    first, again = asyncio.run(scenario())
    assert first.status.state == a2a.TaskState.TASK_STATE_COMPLETED
    assert _text(first) == "You said: hello"
    assert again.context_id == first.context_id and again.id != first.id
    assert _text(again) == "You said: again"
    history = Api(url).messages(first.context_id)
    assert [m["content"] for m in history] == [
        "hello",
        "You said: hello",
        "again",
        "You said: again",
    ]


def test_the_a2a_projects_javascript_client_talks_to_the_door_too(split_stack: Stack) -> None:
    """A second client nobody here wrote: @a2a-js/sdk (npm), installed as its lock file
    pins it, holds a conversation and answers a task that needs input."""
    folder = PROJECT_ROOT / "tests" / "a2a_js"
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "the A2A JavaScript client test needs Node and npm"
    if not (folder / "node_modules" / "@a2a-js" / "sdk").exists():
        subprocess.run([npm, "ci", "--silent"], cwd=folder, check=True, timeout=300)
    done = subprocess.run(
        [node, "ask.mjs", split_stack.api.url, "assistant", "asker"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["first"]["state"] == "TASK_STATE_COMPLETED"
    assert seen["first"]["text"] == "You said: hello"
    assert seen["first"]["id"] == f"{seen['first']['context']}.{seen['first']['id'].split('.')[1]}"
    assert seen["again"] == {"context": seen["first"]["context"], "text": "You said: again"}
    assert seen["asked"] == {
        "state": "TASK_STATE_INPUT_REQUIRED",
        "question": "Which order do you mean?",
    }
    assert seen["done"]["state"] == "TASK_STATE_COMPLETED"
    assert seen["done"]["text"] == "Thanks, I have noted it."
    assert seen["read"] == {"state": "TASK_STATE_COMPLETED", "history": 4}


def test_a_streamed_task_comes_as_updates(split_stack: Stack) -> None:
    async def scenario() -> list[a2a.StreamResponse]:
        client = await _client(split_stack.api.url, "support", streaming=True)
        return [r async for r in client.send_message(_message("Where is my order 1001?"))]

    responses = asyncio.run(scenario())
    kinds = [r.WhichOneof("payload") for r in responses]
    assert kinds[0] == "task" and "artifact_update" in kinds
    states = [r.status_update.status.state for r in responses if r.HasField("status_update")]
    assert states[-1] == a2a.TaskState.TASK_STATE_COMPLETED
    whole = [r.artifact_update for r in responses if r.HasField("artifact_update")][-1]
    assert whole.last_chunk and "due in 2 days" in whole.artifact.parts[0].text


def test_a_task_that_needs_input_is_resumed_and_another_cancelled(split_stack: Stack) -> None:
    async def scenario() -> tuple[a2a.Task, a2a.Task, a2a.Task, a2a.Task]:
        client = await _client(split_stack.api.url, "asker")
        asked = await _last_task(client.send_message(_message("Cancel my order")))
        done = await _last_task(
            client.send_message(_message("Order 1001", asked.context_id, asked.id))
        )
        read = await client.get_task(a2a.GetTaskRequest(id=asked.id))
        waiting = await _last_task(client.send_message(_message("Another one")))
        cancelled = await client.cancel_task(a2a.CancelTaskRequest(id=waiting.id))
        with pytest.raises(TaskNotFoundError):
            await client.get_task(a2a.GetTaskRequest(id="th_nobody.run_nothing"))
        return asked, done, read, cancelled

    asked, done, read, cancelled = asyncio.run(scenario())
    assert asked.status.state == a2a.TaskState.TASK_STATE_INPUT_REQUIRED
    assert asked.status.message.parts[0].text == "Which order do you mean?"
    assert done.status.state == a2a.TaskState.TASK_STATE_COMPLETED and done.id == asked.id
    assert _text(done) == "Thanks, I have noted it."
    assert read.status.state == a2a.TaskState.TASK_STATE_COMPLETED
    assert [m.parts[0].text for m in read.history][0] == "Cancel my order"
    assert cancelled.status.state == a2a.TaskState.TASK_STATE_CANCELED


@pytest.fixture
def pushing(dapr_bin: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A split stack whose agent `pinger` asks a question and may push to the receiver."""
    port = free_port()
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "pinger.json").write_text(
        json.dumps(
            {
                "name": "pinger",
                "tools": ["ask_user"],
                "webhook": {"secret": "pinger-hook", "allowed_urls": [f"http://127.0.0.1:{port}/"]},
                "script": [
                    {"tool_calls": [{"name": "ask_user", "arguments": {"question": "Which?"}}]},
                    "Noted.",
                ],
            }
        )
    )
    resources = tmp_path / "resources"
    resources.mkdir()
    local_secret_store(resources, {"pinger-hook": {"signing-key": KEY}})
    dirs = [*json.loads(TEST_AGENTS["THREADHOST_AGENTS_DIRS"]), str(agents)]
    config = make_stack_config(
        dapr_bin,
        tmp_path,
        uuid.uuid4().hex[:10],
        env={"THREADHOST_AGENTS_DIRS": json.dumps(dirs), "THREADHOST_SECRET_STORE": "localsecrets"},
    )
    config.extra_resources.append(resources)
    receiver = Process(
        "push-receiver",
        ["python", "-m", "tests.fakes.webhook_receiver", str(port), KEY, "0"],
        tmp_path / "logs",
        cwd=PROJECT_ROOT,
    )
    try:
        receiver.wait_http_ok(f"http://127.0.0.1:{port}/health", 30)
        with Stack(config, split=True) as stack:
            yield stack, port
    finally:
        receiver.stop()


def test_a_push_notification_reaches_the_receiver_signed_with_the_clients_token(
    pushing,  # type: ignore[no-untyped-def]
) -> None:
    stack, port = pushing
    hook = f"http://127.0.0.1:{port}/hook"

    async def scenario() -> a2a.Task:
        client = await _client(stack.api.url, "pinger")
        asked = await _last_task(client.send_message(_message("Ping me")))
        refused = a2a.TaskPushNotificationConfig(task_id=asked.id, url="http://192.0.2.7/steal")
        with pytest.raises(InvalidParamsError, match="allowed_urls"):
            await client.create_task_push_notification_config(refused)
        await client.create_task_push_notification_config(
            a2a.TaskPushNotificationConfig(task_id=asked.id, id="p1", url=hook, token="tok-42")
        )
        # Asked late: the task's state now (it needs input) is pushed at once.
        wait_for(lambda: len(_seen(port)) >= 1, 30, "the first push")
        return await _last_task(
            client.send_message(_message("Order 1", asked.context_id, asked.id))
        )

    done = asyncio.run(scenario())
    assert done.status.state == a2a.TaskState.TASK_STATE_COMPLETED
    wait_for(lambda: len(_seen(port)) >= 2, 30, "the push of the task's end")
    pushed = _seen(port)
    assert all(p["valid"] and p["token"] == "tok-42" for p in pushed), pushed
    states = [json_format.Parse(p["body"], a2a.StreamResponse()).status_update for p in pushed]
    assert {s.task_id for s in states} == {done.id}
    assert [s.status.state for s in states] == [
        a2a.TaskState.TASK_STATE_INPUT_REQUIRED,
        a2a.TaskState.TASK_STATE_COMPLETED,
    ]


def _seen(port: int) -> list[dict]:
    return httpx.get(f"http://127.0.0.1:{port}/seen").json()


def test_another_teams_agent_is_a_tool_over_a2a(dapr_bin: Path, tmp_path: Path) -> None:
    """An agent whose tool is the support agent over A2A, reached through Dapr service
    invocation of the gateway's door (as another team's would be), with the a2a-sdk
    client in the actor host: the remote task's answer is the tool's result."""
    suffix = uuid.uuid4().hex[:10]
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "concierge.json").write_text(
        json.dumps(
            {
                "name": "concierge",
                "a2a_agents": [
                    {
                        "name": "ask_support_team",
                        "app_id": f"gateway-{suffix}",
                        "path": "v1/a2a/support",
                    }
                ],
                "script": [
                    {
                        "tool_calls": [
                            {
                                "name": "ask_support_team",
                                "arguments": {"input": "Where is my order 1001?"},
                            }
                        ]
                    },
                    "The support team says it has shipped.",
                ],
            }
        )
    )
    dirs = [*json.loads(TEST_AGENTS["THREADHOST_AGENTS_DIRS"]), str(agents)]
    # The gateway takes calls from the apps it lists, the actor host's too.
    config = make_stack_config(
        dapr_bin,
        tmp_path,
        suffix,
        env={
            "THREADHOST_AGENTS_DIRS": json.dumps(dirs),
            "THREADHOST_SERVICE_CALLERS": json.dumps([f"threads-{suffix}"]),
        },
    )
    with Stack(config, split=True) as stack:
        api = Api(stack.api.url)
        thread = api.create_thread(agent="concierge")
        answer = api.say(thread, "How is my order doing?")
        assert answer["run"]["status"] == "completed", answer["run"]
        result = next(m for m in answer["messages"] if m["kind"] == "tool_result")
        assert "due in 2 days" in result["content"] and not result["is_error"], result
        assert answer["reply"] == "The support team says it has shipped."
