"""Typed answers through the doors, on the split stack (gateway and actor host apart):
the official `openai` SDK's `parse()` with a pydantic model on both OpenAI doors, each
turn's model a vendor whose local server answers in its wire format and is asked for its
structured-output mode; an answer that does not match is retried once, then the run
fails saying why; a message on /v1/threads may ask for a schema too."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel

from tests.conftest import Api, make_stack_config
from tests.fakes.vendor_server import VendorServer
from tests.fakes.wire import Answer, AnthropicWire, OpenAIChatWire
from threadhost.stack import Stack


class Order(BaseModel):
    order_id: str
    status: str
    due_in_days: int


VALID = Order(order_id="1001", status="shipped", due_in_days=2)


@pytest.fixture(scope="module")
def vendor() -> Iterator[VendorServer]:
    server = VendorServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(
    vendor: VendorServer, dapr_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    config = make_stack_config(
        dapr_bin,
        tmp_path_factory.mktemp("typed"),
        uuid.uuid4().hex[:10],
        env={
            "THREADHOST_OPENAI_BASE_URL": f"{vendor.url}/v1",
            "THREADHOST_ANTHROPIC_BASE_URL": vendor.url,
            "THREADHOST_OPENAI_API_KEY": "sk-typed-answers-test",
            "THREADHOST_ANTHROPIC_API_KEY": "sk-typed-answers-test",
            "THREADHOST_DEFAULT_MODEL": "scripted",
            "THREADHOST_RETRY": json.dumps({"attempts": 1, "base_delay": 0, "max_delay": 0}),
        },
    )
    with Stack(config, split=True) as running:
        yield running


@pytest.fixture
def client(stack: Stack, vendor: VendorServer) -> OpenAI:
    vendor.replies.clear()
    vendor.received.clear()
    return OpenAI(base_url=f"{stack.api.url}/v1", api_key="unused", max_retries=0)


def test_chat_completions_parse_gets_a_typed_answer(client: OpenAI, vendor: VendorServer) -> None:
    vendor.queue(OpenAIChatWire().stream(Answer(text=VALID.model_dump_json())))
    completion = client.chat.completions.parse(
        model="assistant@openai:gpt-4o-mini",
        messages=[{"role": "user", "content": "Where is order 1001?"}],
        response_format=Order,
    )
    assert completion.choices[0].message.parsed == VALID
    # The vendor was asked for the schema the SDK sent, in its structured-output mode.
    sent = vendor.received[0].body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Order"
    assert sent["json_schema"]["strict"] is True
    assert sent["json_schema"]["schema"]["required"] == ["order_id", "status", "due_in_days"]
    ids = getattr(completion, "threadhost")  # noqa: B009 (threadhost's own field)
    api = Api(str(client.base_url).removesuffix("/v1/"))
    run = api.http.get(f"/v1/threads/{ids['thread_id']}/runs/{ids['run_id']}").json()
    assert run["output"] == VALID.model_dump()
    assert run["output_schema"]["name"] == "Order"


def test_a_streamed_typed_answer_comes_whole(client: OpenAI, vendor: VendorServer) -> None:
    vendor.queue(OpenAIChatWire().stream(Answer(text=VALID.model_dump_json())))
    with client.chat.completions.stream(
        model="assistant@openai:gpt-4o-mini",
        messages=[{"role": "user", "content": "Where is order 1001?"}],
        response_format=Order,
    ) as stream:
        pieces = [e.delta for e in stream if e.type == "content.delta" and e.delta]
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == VALID
    assert len(pieces) == 1 and json.loads(pieces[0]) == VALID.model_dump()


def test_responses_parse_retries_an_answer_that_does_not_match(
    client: OpenAI, vendor: VendorServer
) -> None:
    vendor.queue(
        AnthropicWire().stream(Answer(text='{"order_id": 1001, "status": "shipped"}')),
        AnthropicWire().stream(Answer(text=VALID.model_dump_json())),
    )
    response = client.responses.parse(
        model="assistant@anthropic:claude-haiku-4-5",
        input="Where is order 1001?",
        text_format=Order,
    )
    assert response.output_parsed == VALID
    first, retry = (r.body for r in vendor.received)
    for body in (first, retry):
        assert body["output_config"]["format"]["type"] == "json_schema"
        assert body["output_config"]["format"]["schema"]["required"] == [
            "order_id",
            "status",
            "due_in_days",
        ]
    told = retry["messages"][-1]["content"][-1]["text"]
    assert "order_id: 1001 is not of type 'string'" in told
    assert "'due_in_days' is a required property" in told


def test_a_second_answer_that_does_not_match_fails_the_turn_saying_why(
    client: OpenAI, vendor: VendorServer
) -> None:
    for _ in range(2):
        vendor.queue(OpenAIChatWire().stream(Answer(text="Order 1001 has shipped.")))
    with pytest.raises(openai.InternalServerError) as failed:
        client.responses.parse(
            model="assistant@openai:gpt-4o-mini",
            input="Where is order 1001?",
            text_format=Order,
        )
    assert "output_schema" in failed.value.body["message"]  # type: ignore[index]
    assert "not JSON" in failed.value.body["message"]  # type: ignore[index]
    assert len(vendor.received) == 2
    assert all(r.body["response_format"]["json_schema"]["name"] == "Order" for r in vendor.received)


def test_a_message_may_ask_for_a_schema(stack: Stack) -> None:
    api = Api(stack.api.url)
    thread = api.create_thread()
    answer = api.http.post(
        f"/v1/threads/{thread}/messages",
        json={
            "content": "Where is order 1001?",
            "output_schema": {"schema": Order.model_json_schema()},
        },
    ).json()
    assert answer["run"]["status"] == "completed"
    assert (
        Order.model_validate(answer["run"]["output"]).order_id == "You said: Where is order 1001?"
    )
    refused = api.http.post(
        f"/v1/threads/{thread}/messages",
        json={"content": "again", "output_schema": {"schema": {"type": "objekt"}}},
    )
    assert refused.status_code == 422
    assert "output_schema" in refused.text and "not a JSON schema" in refused.text
