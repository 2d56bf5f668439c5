"""Contract tests: each adapter, through the vendor's real SDK, against a local server that
speaks the vendor's wire protocol (JSON and server-sent events)."""

import asyncio
import json

import pytest

from actors.engine.errors import (
    AuthenticationFailed,
    BadRequest,
    ContextOverflow,
    ProviderUnavailable,
)
from actors.engine.messages import AssistantText, ToolCall, ToolResult, UserText
from actors.engine.provider import ModelRequest, ModelResponse, Provider, ToolSpec
from actors.engine.providers.anthropic_messages import AnthropicMessages
from actors.engine.providers.openai_chat import OpenAIChat
from actors.engine.providers.openai_responses import OpenAIResponses
from actors.engine.retry import RetryPolicy, with_retries
from tests.fakes.vendor_server import Reply, VendorServer
from tests.fakes.wire import Answer, AnthropicWire, OpenAIChatWire, OpenAIResponsesWire, error

SECRET = "sk-test-do-not-leak-0123456789"
VENDORS = {
    "openai-chat": (
        OpenAIChatWire(),
        "/v1/chat/completions",
        lambda url: OpenAIChat("gpt-x", api_key=SECRET, base_url=f"{url}/v1"),
    ),
    "openai-responses": (
        OpenAIResponsesWire(),
        "/v1/responses",
        lambda url: OpenAIResponses("gpt-x", api_key=SECRET, base_url=f"{url}/v1"),
    ),
    "anthropic": (
        AnthropicWire(),
        "/v1/messages",
        lambda url: AnthropicMessages("claude-x", api_key=SECRET, base_url=url),
    ),
}
TOOLS = [
    ToolSpec(
        name="query_order",
        description="Looks an order up",
        parameters={
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    )
]
# A history with an earlier tool exchange, which every vendor wants in its own shape.
HISTORY = [
    UserText(text="Where is order 1?"),
    AssistantText(text="Checking."),
    ToolCall(call_id="c0", name="query_order", arguments='{"order_id": "1"}'),
    ToolResult(call_id="c0", name="query_order", content='{"status": "shipped"}'),
    AssistantText(text="It has shipped."),
    UserText(text="And order 2?"),
]
REQUEST = ModelRequest(system="Be brief.", messages=HISTORY, tools=TOOLS)


@pytest.fixture(scope="module")
def server():
    running = VendorServer().start()
    yield running
    running.stop()


@pytest.fixture(params=list(VENDORS))
def vendor(request, server):
    server.replies.clear()
    server.received.clear()
    wire, path, make = VENDORS[request.param]
    return request.param, wire, path, make(server.url)


def complete(provider: Provider) -> ModelResponse:
    return asyncio.run(provider.complete(REQUEST))


def stream(provider: Provider) -> tuple[str, ModelResponse]:
    async def collect():
        text, final = "", None
        async for event in provider.stream(REQUEST):
            if isinstance(event, ModelResponse):
                final = event
            else:
                text += event.text
        return text, final

    return asyncio.run(collect())


def test_a_text_answer_with_its_usage(vendor, server) -> None:
    name, wire, path, provider = vendor
    server.queue(wire.reply(Answer(text="Order 2 is processing.")))
    response = complete(provider)
    assert response.parts == [
        AssistantText(text="Order 2 is processing.", model=wire.snapshot, at=response.parts[0].at)
    ]
    assert response.model == wire.snapshot and response.stop_reason == "end_turn"
    assert (
        response.usage.input_tokens,
        response.usage.output_tokens,
        response.usage.cached_tokens,
    ) == (11, 7, 3)
    assert response.usage.reasoning_tokens == (0 if name == "anthropic" else 2)
    sent = server.received[-1]
    assert sent.path == path
    assert SECRET in sent.headers.get("authorization", "") + sent.headers.get("x-api-key", "")


def test_the_history_goes_out_in_the_vendors_shape(vendor, server) -> None:
    name, wire, _, provider = vendor
    server.queue(wire.reply(Answer(text="ok")))
    complete(provider)
    body = server.received[-1].body
    if name == "openai-chat":
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assistant = body["messages"][2]
        assert assistant["content"] == "Checking."
        assert assistant["tool_calls"][0]["function"] == {
            "name": "query_order",
            "arguments": '{"order_id": "1"}',
        }
        assert body["messages"][3] == {
            "role": "tool",
            "tool_call_id": "c0",
            "content": '{"status": "shipped"}',
        }
        assert body["tools"][0]["function"]["name"] == "query_order"
    elif name == "openai-responses":
        assert body["instructions"] == "Be brief." and body["store"] is False
        kinds = [item["type"] for item in body["input"]]
        assert kinds == [
            "message",
            "message",
            "function_call",
            "function_call_output",
            "message",
            "message",
        ]
        assert body["input"][3] == {
            "type": "function_call_output",
            "call_id": "c0",
            "output": '{"status": "shipped"}',
        }
        assert body["tools"][0]["name"] == "query_order"
    else:
        assert body["system"] == "Be brief." and body["max_tokens"] > 0
        assert [m["role"] for m in body["messages"]] == [
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
        ]
        assert body["messages"][1]["content"][1] == {
            "type": "tool_use",
            "id": "c0",
            "name": "query_order",
            "input": {"order_id": "1"},
        }
        assert body["messages"][2]["content"][0]["type"] == "tool_result"
        assert body["tools"][0]["input_schema"]["required"] == ["order_id"]


def test_parallel_tool_calls(vendor, server) -> None:
    _, wire, _, provider = vendor
    calls = (
        ("call_a", "query_order", '{"order_id": "2"}'),
        ("call_b", "query_order", '{"order_id": "3"}'),
    )
    server.queue(wire.reply(Answer(calls=calls)))
    response = complete(provider)
    assert [(p.call_id, p.name, json.loads(p.arguments)) for p in response.parts] == [
        ("call_a", "query_order", {"order_id": "2"}),
        ("call_b", "query_order", {"order_id": "3"}),
    ]
    assert response.stop_reason == "tool_use"


def test_a_streamed_answer_with_text_and_a_tool_call(vendor, server) -> None:
    name, wire, _, provider = vendor
    answer = Answer(
        text="Let me check order 2 for you.",
        calls=()
        if name == "openai-responses"
        else (("call_s", "query_order", '{"order_id": "2"}'),),
    )
    server.queue(wire.stream(answer))
    text, final = stream(provider)
    assert text == "Let me check order 2 for you."
    assert final.parts[0].text == text
    assert [p.name for p in final.parts if isinstance(p, ToolCall)] == [c[1] for c in answer.calls]
    assert final.usage.output_tokens == 7 and final.usage.input_tokens == 11


def test_a_rate_limit_is_retried_after_what_retry_after_says(vendor, server) -> None:
    _, wire, _, provider = vendor
    server.queue(error(429, "slow down", **{"retry-after": "3"}), wire.reply(Answer(text="done")))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    response = asyncio.run(
        with_retries(lambda: provider.complete(REQUEST), RetryPolicy(attempts=3), sleep)
    )
    assert response.parts[0].text == "done" and waits == [3.0]


def test_a_server_error_is_unavailable_and_retried(vendor, server) -> None:
    _, wire, _, provider = vendor
    server.queue(error(500, "overloaded"), wire.reply(Answer(text="done")))

    async def twice() -> ModelResponse:
        with pytest.raises(ProviderUnavailable):
            await provider.complete(REQUEST)
        return await provider.complete(REQUEST)

    assert asyncio.run(twice()).parts[0].text == "done"


def test_a_refused_key_and_a_bad_request_are_not_retried(vendor, server) -> None:
    _, _, _, provider = vendor
    server.queue(error(401, "invalid x-api-key"), error(400, "prompt is too long"))

    async def both() -> None:
        with pytest.raises(AuthenticationFailed) as refused:
            await provider.complete(REQUEST)
        assert SECRET not in str(refused.value)
        with pytest.raises(BadRequest, match="prompt is too long"):
            await provider.complete(REQUEST)

    asyncio.run(both())


def test_a_request_longer_than_the_context_window_is_told_apart(vendor, server) -> None:
    name, _, _, provider = vendor
    if name == "anthropic":
        server.queue(error(400, "prompt is too long: 210000 tokens > 200000 maximum"))
    else:
        server.queue(
            Reply(
                status=400,
                body={
                    "error": {
                        "message": "Your input exceeds the context window of this model.",
                        "type": "invalid_request_error",
                        "code": "context_length_exceeded",
                    }
                },
            )
        )
    with pytest.raises(ContextOverflow):
        complete(provider)


def test_a_stream_cut_off_midway_is_unavailable(vendor, server) -> None:
    _, wire, _, provider = vendor
    server.queue(wire.stream(Answer(text="This answer never ends properly."), cut=True))
    with pytest.raises(ProviderUnavailable):
        stream(provider)
