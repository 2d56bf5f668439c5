"""On the real runtime, one thread changes model and vendor from turn to turn. The actor
streams every model call (its deltas go out to SSE listeners), so the fake vendor answers
with its streamed wire format."""

import json
from dataclasses import replace

import pytest

from tests.conftest import Api
from tests.fakes.vendor_server import VendorServer
from tests.fakes.wire import Answer, AnthropicWire, OpenAIChatWire, error
from threadhost.client import EventStreamParser
from threadhost.stack import Stack

SECRET = "sk-runtime-secret-4242424242"


@pytest.fixture
def vendor_server():
    server = VendorServer().start()
    yield server
    server.stop()


def _against(
    vendor_server: VendorServer, stack_config, stacks, default_model: str, attempts: int
) -> tuple[Stack, Api]:
    """A stack whose vendors are the fake server, retrying at once."""
    config = stack_config(
        env={
            "THREADHOST_OPENAI_BASE_URL": f"{vendor_server.url}/v1",
            "THREADHOST_ANTHROPIC_BASE_URL": vendor_server.url,
            "THREADHOST_OPENAI_API_KEY": SECRET,
            "THREADHOST_ANTHROPIC_API_KEY": SECRET,
            "THREADHOST_DEFAULT_MODEL": default_model,
            "THREADHOST_RETRY": json.dumps({"attempts": attempts, "base_delay": 0, "max_delay": 0}),
        }
    )
    stack = Stack(config)
    stacks.append(stack)
    stack.start()
    return stack, Api(stack.api.url)


def test_model_and_vendor_change_between_turns(stack_config, stacks, vendor_server) -> None:
    # With keys set the default model would be a vendor's; the first turn stays scripted.
    stack, api = _against(vendor_server, stack_config, stacks, "scripted", attempts=3)
    config = stack.config
    thread = api.create_thread()

    first = api.say(thread, "hello")
    assert first["reply"] == "You said: hello"

    vendor_server.queue(
        error(429, "slow down", **{"retry-after": "0"}),
        OpenAIChatWire().stream(Answer(text="Hi from OpenAI.", model="gpt-x-1")),
    )
    second = api.http.post(
        f"/v1/threads/{thread}/messages", json={"content": "again", "model": "openai:gpt-4o-mini"}
    ).json()
    assert second["reply"] == "Hi from OpenAI."
    assert second["run"]["agent"]["model"] == "openai:gpt-4o-mini"
    [call] = second["run"]["model_calls"]
    assert (call["vendor"], call["model"]) == ("openai", "gpt-x-1")
    assert call["usage"]["input_tokens"] == 11 and call["latency_ms"] > 0
    sent = vendor_server.received[-1].body["messages"]
    assert [m["content"] for m in sent] == [
        "You are a helpful assistant. Answer briefly.",
        "hello",
        "You said: hello",
        "again",
    ]

    vendor_server.queue(AnthropicWire().stream(Answer(text="Hi from Claude.", model="claude-x")))
    third = api.http.post(
        f"/v1/threads/{thread}/messages",
        json={"content": "once more", "model": "anthropic:claude-haiku-4-5"},
    ).json()
    assert third["reply"] == "Hi from Claude."
    assert third["run"]["model_calls"][0]["vendor"] == "anthropic"

    described = api.http.get(f"/v1/threads/{thread}").json()
    assert described["usage"]["input_tokens"] == sum(
        t["run"]["usage"]["input_tokens"] for t in (first, second, third)
    )
    logs = "".join(p.read_text(errors="replace") for p in (config.data_dir / "logs").iterdir())
    assert SECRET not in logs


def test_an_unknown_model_recipe_is_refused(stack) -> None:
    api = Api(stack.api.url)
    thread = api.create_thread()
    response = api.http.post(
        f"/v1/threads/{thread}/messages", json={"content": "hi", "model": "nope:thing"}
    )
    assert response.status_code == 422
    assert "unknown vendor" in response.json()["detail"]
    assert api.history(thread) == []


def test_vendor_keys_come_from_a_dapr_secret_store(
    stack_config, stacks, vendor_server, tmp_path
) -> None:
    stored_key = "sk-from-the-secret-store-777"
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "keys.json").write_text(
        f'{{"threadhost-api-keys": {{"openai-api-key": "{stored_key}"}}}}'
    )
    (secrets / "store.yaml").write_text(f"""
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: localsecrets
spec:
  type: secretstores.local.file
  version: v1
  metadata:
    - name: secretsFile
      value: {secrets / "keys.json"}
    - name: multiValued
      value: "true"
""")
    config = stack_config(
        env={
            "THREADHOST_SECRET_STORE": "localsecrets",
            "THREADHOST_OPENAI_BASE_URL": f"{vendor_server.url}/v1",
            "THREADHOST_DEFAULT_MODEL": "openai:gpt-x",
        }
    )
    config.extra_resources.append(secrets)
    stack = Stack(config)
    stacks.append(stack)
    stack.start()
    vendor_server.queue(OpenAIChatWire().stream(Answer(text="Keyed.")))
    api = Api(stack.api.url)
    assert api.say(api.create_thread(), "hi")["reply"] == "Keyed."
    assert vendor_server.received[-1].headers["authorization"] == f"Bearer {stored_key}"


def test_a_retried_streaming_call_never_shows_its_text_twice(
    stack_config, stacks, vendor_server
) -> None:
    """The vendor's stream breaks after some text went out; the call is retried and its
    text starts over. A client that follows token.discard shows the answer once."""
    _, api = _against(vendor_server, stack_config, stacks, "openai:gpt-x", attempts=2)
    thread = api.create_thread()
    wire = OpenAIChatWire()
    first, second = "Broken first attempt, never finished.", "The whole answer, once."
    # The first attempt's text goes out while its stream stalls, before it breaks.
    broken = replace(wire.stream(Answer(text=first, model="gpt-x-1"), cut=True), ends_after=0.5)
    vendor_server.queue(broken, wire.stream(Answer(text=second, model="gpt-x-1")))
    with api.http.stream(
        "POST", f"/v1/threads/{thread}/messages", json={"content": "hi", "mode": "stream"}
    ) as response:
        body = response.read().decode()
    parser, shown, withdrawn = EventStreamParser(), "", False
    for line in body.splitlines():
        event = parser.feed(line)
        if event is not None and event.event == "token.discard":
            shown, withdrawn = "", True
        elif event is not None and event.event == "token.delta":
            assert event.data["attempt"] in (1, 2)
            shown += event.data["text"]
    assert len(vendor_server.received) == 2
    assert "Brok" in body, "the first attempt's text was streamed before the break"
    assert withdrawn and first[:4] not in shown
    assert second.startswith(shown)  # the rest comes whole with its step
    assert api.history(thread) == [("user", "hi"), ("assistant", second)]
