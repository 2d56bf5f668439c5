"""Typed results in process: a run's answer checked against its output schema, retried
once with what was wrong, its value on the run and in its completed event; the vendor's
structured-output mode asked for in each vendor's wire format."""

import asyncio
import json

import pytest
from pydantic import BaseModel, ValidationError

from actors.engine.agents import AgentDefinition
from actors.engine.events import run_announcements
from actors.engine.messages import AssistantText, UserText
from actors.engine.output import OutputSchema, check
from actors.engine.provider import ModelRequest
from actors.engine.providers.anthropic_messages import AnthropicMessages
from actors.engine.providers.openai_chat import OpenAIChat
from actors.engine.providers.openai_responses import OpenAIResponses
from actors.engine.scripted import ScriptedProvider
from tests.fakes.vendor_server import VendorServer
from tests.fakes.wire import Answer, AnthropicWire, OpenAIChatWire, OpenAIResponsesWire
from tests.test_engine import run_agent


class Order(BaseModel):
    order_id: str
    status: str
    items: list[str]
    due_in_days: int | None


ORDER = OutputSchema(name="order", schema=Order.model_json_schema())
VALID = json.dumps({"order_id": "1001", "status": "shipped", "items": ["mug"], "due_in_days": 2})


def agent(script: list[str], schema: OutputSchema | None = ORDER) -> AgentDefinition:
    return AgentDefinition(name="typed", script=script, output_schema=schema)


def test_a_valid_answer_completes_the_run_with_its_value() -> None:
    run, history, events = run_agent(agent([VALID]))
    assert run.status == "completed"
    assert run.output == json.loads(VALID)
    assert events[-1].data["output"] == json.loads(VALID)
    announced = run_announcements("alice", run, events)[-1]
    assert announced.type == "threadhost.run.completed"
    assert announced.data["output"] == json.loads(VALID)


class Answers(ScriptedProvider):
    """A model that gives these answers in turn, and keeps the requests."""

    def __init__(self, *answers: str) -> None:
        super().__init__()
        self.answers, self.requests = list(answers), list[ModelRequest]()

    async def complete(self, request: ModelRequest):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        return await ScriptedProvider([self.answers.pop(0)]).complete(request)


def test_an_answer_that_does_not_match_is_retried_once_with_what_was_wrong() -> None:
    model = Answers('{"order_id": 1001}', VALID)
    run, history, _ = run_agent(agent([]), provider=model)
    assert run.status == "completed", run.reason
    assert run.output == json.loads(VALID) and run.output_retried
    told = model.requests[1].messages[-1]
    assert isinstance(told, UserText)
    assert "order_id: 1001 is not of type 'string'" in told.text
    assert "'status' is a required property" in told.text
    assert all(r.output_schema == ORDER for r in model.requests)
    # Both answers stay in the history; the correction was said to the model only.
    assert [m.kind for m in history] == ["user_text", "assistant_text", "assistant_text"]


def test_a_second_answer_that_does_not_match_fails_the_run_saying_why() -> None:
    model = Answers("[1, 2]", '{"order_id": "1001"}')
    run, history, events = run_agent(agent([]), provider=model)
    assert run.status == "failed"
    assert run.reason is not None and run.reason.startswith("output_schema:")
    assert "'status' is a required property" in run.reason
    assert run.output is None
    assert sum(isinstance(m, AssistantText) for m in history) == 2


def test_without_a_schema_any_text_completes() -> None:
    run, _, _ = run_agent(agent(["plain words"], schema=None))
    assert run.status == "completed" and run.output is None


def test_the_scripted_model_answers_a_schema_with_an_example_of_it() -> None:
    run, _, _ = run_agent(agent([]), text="Where is 1001?")
    assert run.status == "completed"
    assert Order.model_validate(run.output).order_id == "You said: Where is 1001?"


def test_a_reference_to_nowhere_is_a_problem_of_the_answer_not_a_crash() -> None:
    broken = OutputSchema(schema={"$ref": "#/$defs/Nowhere"})
    assert "cannot check it" in check(broken, "1").problems[0]


def test_a_fenced_answer_is_read_as_its_json() -> None:
    assert check(ORDER, f"```json\n{VALID}\n```").value == json.loads(VALID)


@pytest.mark.parametrize(
    "schema, says",
    [
        ({"type": "objekt"}, "not a JSON schema"),
        ({"type": "object", "properties": {"a": {"x": "\x00"}}}, "NUL"),
        ({"type": "object", "description": "x" * 40_000}, "at most 32768"),
        ({"type": "string", "pattern": "["}, "is not a 'regex'"),
        ({"$ref": "https://schemas.example.com/order.json"}, "only references within"),
    ],
)
def test_a_schema_that_is_not_one_is_refused(schema: dict, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        OutputSchema(schema=schema)


# --- each vendor's structured-output mode, on its wire -----------------------------------


@pytest.fixture
def vendor() -> VendorServer:
    server = VendorServer().start()
    yield server
    server.stop()


REQUEST = ModelRequest(messages=[UserText(text="order 1001?")], output_schema=ORDER)


def test_openai_chat_asks_for_a_json_schema_response_format(vendor: VendorServer) -> None:
    vendor.queue(OpenAIChatWire().reply(Answer(text=VALID)))
    provider = OpenAIChat("gpt-4o-mini", api_key="k", base_url=vendor.url + "/v1")
    response = asyncio.run(provider.complete(REQUEST))
    assert vendor.received[0].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "order", "schema": Order.model_json_schema(), "strict": True},
    }
    assert response.parts[0].text == VALID  # type: ignore[union-attr]


def test_an_openai_refusal_is_the_answer(vendor: VendorServer) -> None:
    reply = OpenAIChatWire().reply(Answer())
    reply.body["choices"][0]["message"].update(content=None, refusal="I can't help with that.")
    vendor.queue(reply)
    provider = OpenAIChat("gpt-4o-mini", api_key="k", base_url=vendor.url + "/v1")
    response = asyncio.run(provider.complete(REQUEST))
    assert response.parts[0].text == "I can't help with that."  # type: ignore[union-attr]


def test_openai_responses_asks_for_a_json_schema_text_format(vendor: VendorServer) -> None:
    vendor.queue(OpenAIResponsesWire().reply(Answer(text=VALID)))
    provider = OpenAIResponses("gpt-4o-mini", api_key="k", base_url=vendor.url + "/v1")
    response = asyncio.run(provider.complete(REQUEST))
    assert vendor.received[0].body["text"] == {
        "format": {
            "type": "json_schema",
            "name": "order",
            "schema": Order.model_json_schema(),
            "strict": True,
        }
    }
    assert response.parts[0].text == VALID  # type: ignore[union-attr]


def test_anthropic_asks_for_an_output_format(vendor: VendorServer) -> None:
    vendor.queue(AnthropicWire().reply(Answer(text=VALID)))
    provider = AnthropicMessages("claude-haiku-4-5", api_key="k", base_url=vendor.url)
    response = asyncio.run(provider.complete(REQUEST))
    assert vendor.received[0].body["output_config"] == {
        "format": {"type": "json_schema", "schema": Order.model_json_schema()}
    }
    assert response.parts[0].text == VALID  # type: ignore[union-attr]
