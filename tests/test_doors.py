"""The front doors, spoken to by clients nobody here wrote: the OpenAI door by the
official `openai` SDK and the OpenAI Agents SDK, the MCP door by the `mcp` SDK's client,
against the real runtime, embedded and with the gateway and the actor host apart.
Refusals are checked in process (they never reach an actor)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.conftest import Api, make_stack_config
from threadhost.app import create_app
from threadhost.common.settings import Settings
from threadhost.runtime import PROJECT_ROOT
from threadhost.stack import Stack

SUPPORT_REPLY = (
    "Let me look that order up.\n\nOrder 1001 has shipped and is with the "
    "carrier; it is due in 2 days."
)


@pytest.fixture(scope="module", params=["embedded", "split"])
def door(
    request: pytest.FixtureRequest, dapr_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp(f"openai-{request.param}")
    config = make_stack_config(dapr_bin, folder, uuid.uuid4().hex[:10])
    with Stack(config, split=request.param == "split") as stack:
        yield stack.api.url


def _client(url: str) -> OpenAI:
    return OpenAI(base_url=f"{url}/v1", api_key="unused: authentication is off", max_retries=0)


def test_a_conversation_continues_its_thread_and_stores_each_message_once(door: str) -> None:
    client = _client(door)
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is my order 1001? 🙂"},
    ]
    first = client.chat.completions.with_raw_response.create(model="support", messages=history)
    thread = first.headers["threadhost-thread-id"]
    answer = first.parse()
    assert answer.choices[0].message.content == SUPPORT_REPLY
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.total_tokens > 0 and answer.model == "support"
    history += [
        {"role": "assistant", "content": answer.choices[0].message.content},
        {"role": "user", "content": "Thanks. And when does it arrive?"},
    ]
    second = client.chat.completions.create(
        model="support", messages=history, extra_headers={"threadhost-thread-id": thread}
    )
    assert second.choices[0].message.content == SUPPORT_REPLY
    users = [m["content"] for m in Api(door).messages(thread) if m["role"] == "user"]
    assert users == ["Where is my order 1001? 🙂", "Thanks. And when does it arrive?"]


def test_a_whole_history_sent_to_a_new_thread_is_stored_once(door: str) -> None:
    client = _client(door)
    sent = [
        {"role": "user", "content": "Hi, I am Ann."},
        {"role": "assistant", "content": "Hello Ann!"},
        {"role": "user", "content": [{"type": "text", "text": "Where is order 1001?"}]},
    ]
    raw = client.chat.completions.with_raw_response.create(model="support", messages=sent)
    thread = raw.headers["threadhost-thread-id"]
    stored = [(m["role"], m["content"]) for m in Api(door).messages(thread)]
    assert stored[:4] == [
        ("user", "Hi, I am Ann."),
        ("assistant", "Hello Ann!"),
        ("user", "Where is order 1001?"),
        ("assistant", "Let me look that order up."),
    ]
    assert len(stored) == 9  # and the run's two tool calls, their results and its answer


def test_a_streamed_answer_is_the_same_text_in_chunks(door: str) -> None:
    client = _client(door)
    stream = client.chat.completions.create(
        model="support",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Where is my order 1001?"}],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == SUPPORT_REPLY
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_a_client_tool_call_comes_back_and_its_result_resumes_the_run(door: str) -> None:
    client = _client(door)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_location",
                "description": "Where the user is.",
                "parameters": {"type": "object", "properties": {"precision": {"type": "string"}}},
            },
        }
    ]
    messages: list = [{"role": "user", "content": "What's the weather here?"}]
    raw = client.chat.completions.with_raw_response.create(
        model="locator", messages=messages, tools=tools
    )
    thread, asked = raw.headers["threadhost-thread-id"], raw.parse()
    assert asked.choices[0].finish_reason == "tool_calls"
    [call] = asked.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_location",
        {"precision": "city"},
    )
    messages += [
        asked.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Berlin"},
    ]
    done = client.chat.completions.create(
        model="locator",
        messages=messages,
        tools=tools,
        extra_headers={"threadhost-thread-id": thread},
    )
    assert done.choices[0].message.content == "Here is the weather where you are."
    assert done.choices[0].finish_reason == "stop"
    results = [m["content"] for m in Api(door).messages(thread) if m["role"] == "tool"]
    assert results == ["Berlin"]


def test_the_openai_agents_sdk_runs_a_function_tool_through_a_thread(door: str) -> None:
    from agents import (
        Agent,
        ModelSettings,
        OpenAIChatCompletionsModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)
    located: list[str] = []

    @function_tool
    def get_location(precision: str) -> str:
        """Where the user is."""
        located.append(precision)
        return "Berlin"

    thread = Api(door).create_thread(agent="locator")

    async def scenario() -> str:
        client = AsyncOpenAI(base_url=f"{door}/v1", api_key="unused", max_retries=0)
        agent = Agent(
            name="weather",
            instructions="Say the weather.",
            tools=[get_location],
            model=OpenAIChatCompletionsModel(model="locator", openai_client=client),
            model_settings=ModelSettings(extra_headers={"threadhost-thread-id": thread}),
        )
        result = await Runner.run(agent, "What's the weather here?")
        return result.final_output

    assert asyncio.run(scenario()) == "Here is the weather where you are."
    assert located == ["city"]
    assert [m["content"] for m in Api(door).messages(thread) if m["role"] == "tool"] == ["Berlin"]


def test_the_responses_api_continues_a_thread_by_previous_response_id(door: str) -> None:
    client = _client(door)
    first = client.responses.create(model="support", input="Where is my order 1001?")
    assert first.status == "completed" and first.output_text == SUPPORT_REPLY
    assert first.usage.total_tokens > 0
    thread = first.conversation.id
    second = client.responses.create(
        model="support", input="Thanks!", previous_response_id=first.id
    )
    assert second.conversation.id == thread
    users = [m["content"] for m in Api(door).messages(thread) if m["role"] == "user"]
    assert users == ["Where is my order 1001?", "Thanks!"]


def test_the_responses_api_streams_and_round_trips_a_function_call(door: str) -> None:
    client = _client(door)
    streamed = list(
        client.responses.create(model="support", input="Where is order 1001?", stream=True)
    )
    kinds = [e.type for e in streamed]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in streamed] == list(range(len(streamed)))
    deltas = "".join(e.delta for e in streamed if e.type == "response.output_text.delta")
    assert deltas == SUPPORT_REPLY == streamed[-1].response.output_text
    tools = [
        {
            "type": "function",
            "name": "get_location",
            "description": "Where I am.",
            "parameters": {"type": "object", "properties": {"precision": {"type": "string"}}},
        }
    ]
    asked = client.responses.create(model="locator", input="Weather here?", tools=tools)
    [call] = [item for item in asked.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("get_location", {"precision": "city"})
    done = client.responses.create(
        model="locator",
        previous_response_id=asked.id,
        tools=tools,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Berlin"}],
    )
    assert done.output_text == "Here is the weather where you are."


def test_the_models_are_the_agents(door: str) -> None:
    names = {model.id for model in _client(door).models.list()}
    assert {"support", "locator", "assistant"} <= names


def _readme_example(after: str, door: str) -> str:
    """What the README's first Python example after `after` prints, run as written
    against the door (at most 12 lines: a README example stays short)."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme[readme.index(after) :]
    example = re.search(r"```python\n(.*?)\n```", section, re.S).group(1)
    assert len(example.splitlines()) <= 12
    done = subprocess.run(
        [sys.executable, "-c", example],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "THREADHOST_URL": door},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_readme_example_runs_as_written(door: str) -> None:
    assert _readme_example("## Use it from any OpenAI client", door) == SUPPORT_REPLY


def test_the_readme_typed_answer_runs_as_written(door: str) -> None:
    # The scripted model answers a schema with an example of it, holding its last text.
    last = SUPPORT_REPLY.split("\n\n")[-1]
    printed = _readme_example("**Typed answers.**", door)
    assert printed == f"order_id={last!r} status={last!r}"


def test_an_unknown_model_is_a_not_found_error(door: str) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        _client(door).chat.completions.create(
            model="nobody", messages=[{"role": "user", "content": "hi"}]
        )
    assert unknown.value.code == "model_not_found"


def test_with_authentication_on_a_wrong_key_is_refused_and_a_right_one_talks(
    dapr_bin: Path, tmp_path: Path
) -> None:
    config = make_stack_config(
        dapr_bin,
        tmp_path,
        uuid.uuid4().hex[:10],
        env={"THREADHOST_AUTH_MODE": "jwt", "THREADHOST_JWT_SECRET": SECRET},
    )
    with Stack(config) as stack:
        wrong = OpenAI(base_url=f"{stack.api.url}/v1", api_key="sk-not-a-token", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(
                model="support", messages=[{"role": "user", "content": "hi"}]
            )
        token = jwt.encode({"sub": "ann", "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")
        right = OpenAI(base_url=f"{stack.api.url}/v1", api_key=token, max_retries=0)
        answer = right.chat.completions.with_raw_response.create(
            model="support", messages=[{"role": "user", "content": "Where is order 1001?"}]
        )
        assert answer.parse().choices[0].message.content == SUPPORT_REPLY
        # The thread is the token's subject's: another subject does not see it.
        other = jwt.encode({"sub": "bob", "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")
        seen = httpx.get(
            f"{stack.api.url}/v1/threads/{answer.headers['threadhost-thread-id']}",
            headers={"authorization": f"Bearer {other}"},
        )
        assert seen.status_code == 404


# --- the MCP door -------------------------------------------------------------------------


def _ask(url: str, tool: str, arguments: dict) -> dict:
    from mcp import Client

    async def scenario() -> dict:
        async with Client(f"{url}/v1/mcp") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"ask_support", "ask_approvals", "ask_assistant"} <= names
            result = await client.call_tool(tool, arguments)
            assert not result.is_error, result
            return result.structured_content or json.loads(result.content[0].text)

    return asyncio.run(scenario())


def test_the_mcp_door_takes_a_callers_key_for_a_thread(door: str) -> None:
    key = f"key:chat-{uuid.uuid4().hex[:8]}"
    first = _ask(door, "ask_support", {"message": "Where is my order 1001?", "thread_id": key})
    again = _ask(door, "ask_support", {"message": "Thanks!", "thread_id": key})
    assert first["thread_id"] == again["thread_id"] and first["thread_id"].startswith("th_")
    assert Api(door).http.get(f"/v1/threads/{key}").json()["key"] == key.removeprefix("key:")


def test_the_mcp_door_asks_an_agent_and_continues_its_thread(door: str) -> None:
    first = _ask(door, "ask_support", {"message": "Where is my order 1001?"})
    assert first["status"] == "completed"
    assert first["reply"] == (
        "Order 1001 has shipped and is with the carrier; it is due in 2 days."
    )
    again = _ask(door, "ask_support", {"message": "Thanks!", "thread_id": first["thread_id"]})
    assert again["thread_id"] == first["thread_id"]
    users = [m["content"] for m in Api(door).messages(first["thread_id"]) if m["role"] == "user"]
    assert users == ["Where is my order 1001?", "Thanks!"]


def test_an_mcp_call_whose_run_waits_says_for_what_and_which_run(door: str) -> None:
    asked = _ask(door, "ask_approvals", {"message": "Please cancel order 1002."})
    assert asked["status"] == "requires_action"
    [action] = asked["required_action"]
    assert action["type"] == "approval"
    assert f"/runs/{asked['run_id']}/resume" in asked["reply"]
    resumed = Api(door).http.post(
        f"/v1/threads/{asked['thread_id']}/runs/{asked['run_id']}/resume",
        json={"actions": [{"type": "approval", "call_id": action["call_id"], "approved": True}]},
    )
    assert resumed.status_code == 200 and resumed.json()["run"]["status"] == "completed"


# --- refusals, in process: none reaches an actor ----------------------------------------

SECRET = "s" * 32


def _in_process(auth: bool = False) -> AsyncOpenAI:
    settings = Settings(
        role="gateway",
        auth_mode="jwt" if auth else "none",
        jwt_secret=SECRET if auth else None,
        APP_API_TOKEN="daprd's",
        agents_dirs=[str(PROJECT_ROOT / "agents")],
    )
    transport = httpx.ASGITransport(app=create_app(settings))
    token = jwt.encode({"sub": "ann", "exp": int(time.time()) + 60}, "wrong" * 8, algorithm="HS256")
    return AsyncOpenAI(
        base_url="http://door/v1",
        api_key=token,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=transport),
    )


def test_refusals_come_in_openais_error_shape() -> None:
    async def scenario() -> None:
        with pytest.raises(openai.AuthenticationError) as refused:
            await _in_process(auth=True).chat.completions.create(
                model="support", messages=[{"role": "user", "content": "hi"}]
            )
        assert refused.value.body["type"] == "authentication_error"
        door = _in_process()
        with pytest.raises(openai.NotFoundError) as unknown:
            await door.chat.completions.create(
                model="nobody", messages=[{"role": "user", "content": "hi"}]
            )
        assert unknown.value.body["code"] == "model_not_found"
        for extra, field in (
            ({"n": 2}, "n"),
            ({"logprobs": True}, "logprobs"),
            ({"modalities": ["text", "audio"]}, "modalities"),
            (
                {
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {"name": "x", "schema": {"type": "objekt"}},
                    }
                },
                "response_format",
            ),
        ):
            with pytest.raises(openai.UnprocessableEntityError) as bad:
                await door.chat.completions.create(
                    model="support", messages=[{"role": "user", "content": "hi"}], **extra
                )
            assert bad.value.body["message"].startswith(field), bad.value.body
        with pytest.raises(openai.UnprocessableEntityError) as image:
            await door.chat.completions.create(
                model="support",
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:,"}}],
                    }
                ],
            )
        assert "only text content is supported" in image.value.body["message"]
        with pytest.raises(openai.BadRequestError) as tools_alone:
            await door.chat.completions.create(
                model="support", messages=[{"role": "tool", "tool_call_id": "c1", "content": "x"}]
            )
        assert "threadhost-thread-id" in tools_alone.value.body["message"]

    asyncio.run(scenario())


def test_the_mcp_door_takes_no_call_without_a_valid_token() -> None:
    async def scenario() -> None:
        settings = Settings(
            role="gateway",
            auth_mode="jwt",
            jwt_secret=SECRET,
            APP_API_TOKEN="daprd's",
            agents_dirs=[str(PROJECT_ROOT / "agents")],
        )
        app = create_app(settings)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://door"
        ) as http:
            listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
            for headers in ({}, {"authorization": "Bearer not-a-token"}):
                refused = await http.post("/v1/mcp", json=listing, headers=headers)
                assert refused.status_code == 401, refused.text
                assert refused.headers["content-type"] == "application/problem+json"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "door,body,field",
    [
        (
            "chat/completions",
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "call\u0000x",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "x"},
                ]
            },
            "id",
        ),
        (
            "chat/completions",
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f\u0000", "arguments": ""},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c", "content": "x"},
                ]
            },
            "name",
        ),
        (
            "chat/completions",
            {"messages": [{"role": "tool", "tool_call_id": "c\u0000", "content": "x"}]},
            "tool_call_id",
        ),
        (
            "chat/completions",
            {"messages": [{"role": "user", "name": "ann\u0000", "content": "hi"}]},
            "name",
        ),
        (
            "responses",
            {"input": [{"type": "function_call_output", "call_id": "c\u0000", "output": "x"}]},
            "call_id",
        ),
        (
            "responses",
            {
                "input": [
                    {"type": "function_call", "call_id": "c", "name": "f\u0000", "arguments": "{}"}
                ]
            },
            "name",
        ),
    ],
)
def test_ids_and_names_on_the_openai_doors_are_text(door, body, field) -> None:
    """Tool call ids, function names and participant names hold text only (no NUL),
    refused before any call, naming the field."""

    async def scenario() -> httpx.Response:
        app = create_app(
            Settings(role="gateway", auth_mode="none", agents_dirs=[str(PROJECT_ROOT / "agents")])
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://door"
        ) as http:
            return await http.post(
                f"/v1/{door}",
                json={"model": "support", **body},
                headers={"threadhost-thread-id": "th_1"},
            )

    refused = asyncio.run(scenario())
    assert refused.status_code == 422, refused.text
    assert field in refused.json()["error"]["message"], refused.text
