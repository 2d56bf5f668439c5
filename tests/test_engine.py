"""The run engine with the scripted provider, in memory: no Dapr, no network."""

import asyncio
import json
import subprocess
import sys
from typing import Annotated

import pytest
from pydantic import Field

from actors.engine.agents import AgentDefinition, Limits
from actors.engine.errors import BadRequest, ProviderUnavailable, RateLimited
from actors.engine.loop import run_until_done, start_run
from actors.engine.messages import AssistantText, Message, ToolCall, ToolResult, UserText
from actors.engine.provider import ModelRequest, ModelResponse, Provider
from actors.engine.recipes import Providers, VendorAccess
from actors.engine.retry import RetryPolicy, with_retries
from actors.engine.run import RunRecord
from actors.engine.scripted import ScriptedProvider
from actors.engine.tool_set import build_tool_set
from actors.engine.tools import ToolRegistry, function_tool
from actors.engine.usage import DEFAULT_PRICES, Price, Usage
from actors.tools import build_registry

NO_WAIT = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0)


def run_agent(
    agent: AgentDefinition,
    text: str = "hi",
    provider: Provider | None = None,
    tools: ToolRegistry | None = None,
    prices: dict[str, Price] | None = None,
) -> tuple[RunRecord, list[Message], list]:
    history: list[Message] = [UserText(text=text)]
    tools = tools or build_registry()
    run, events = start_run("run_1", "th_1", agent, build_tool_set(agent, tools), 0)
    provider = provider or asyncio.run(Providers(VendorAccess()).for_agent(agent))
    events += asyncio.run(
        run_until_done(run, history, provider, tools, prices or DEFAULT_PRICES, NO_WAIT)
    )
    return run, history, events


def kinds(history: list[Message]) -> list[str]:
    return [m.kind for m in history]


def test_the_support_agent_calls_both_tools_then_answers() -> None:
    agent = AgentDefinition.model_validate_json(open("agents/support.json").read())
    run, history, events = run_agent(agent.model_copy(update={"model": "scripted"}))
    assert run.status == "completed"
    assert kinds(history) == [
        "user_text",
        "assistant_text",
        "tool_call",
        "tool_result",
        "tool_call",
        "tool_result",
        "assistant_text",
    ]
    order = json.loads(history[3].content)
    assert order["status"] == "shipped" and not history[3].is_error
    assert json.loads(history[5].content)["carrier"] == "ParcelCo"
    assert run.steps == 5 and len(run.model_calls) == 3
    assert [e.seq for e in events] == list(range(len(events)))
    assert [e.data["status"] for e in events if e.type == "run.status"] == ["running", "completed"]


def test_usage_and_cost_add_up_over_the_run() -> None:
    agent = AgentDefinition(
        name="a",
        model="scripted:priced",
        script=[
            {"tool_calls": [{"name": "query_order", "arguments": {"order_id": "1002"}}]},
            "It is being processed.",
        ],
        tools=["query_order"],
    )
    prices = {"priced": Price(input=1_000_000, output=2_000_000)}  # $1 / $2 per token
    run, _, _ = run_agent(agent, prices=prices)
    assert run.usage == sum((c.usage for c in run.model_calls), Usage())
    assert run.cost_usd == pytest.approx(run.usage.input_tokens + 2 * run.usage.output_tokens)
    assert all(c.model == "priced" for c in run.model_calls)


def test_a_run_that_keeps_calling_tools_ends_incomplete_at_max_steps() -> None:
    looping = [{"tool_calls": [{"name": "query_order", "arguments": {"order_id": "1001"}}]}] * 50
    agent = AgentDefinition(
        name="a", tools=["query_order"], script=looping, limits=Limits(max_steps=4)
    )
    run, history, _ = run_agent(agent)
    assert run.status == "incomplete"
    assert run.reason.startswith("max_steps")
    assert run.steps == 4


def test_a_token_budget_stops_the_run_before_the_next_model_call() -> None:
    looping = [
        {
            "text": "checking " * 20,
            "tool_calls": [{"name": "query_order", "arguments": {"order_id": "1001"}}],
        }
    ] * 9
    agent = AgentDefinition(
        name="a", tools=["query_order"], script=looping, limits=Limits(max_tokens=15)
    )
    run, _, _ = run_agent(agent)
    assert run.status == "incomplete" and run.reason.startswith("token budget")
    assert len(run.model_calls) == 1


def test_bad_arguments_unknown_tools_and_raising_tools_go_back_to_the_model() -> None:
    calls = [
        {"name": "query_order", "arguments": {"wrong": 1}},
        {"name": "query_order", "arguments": {"order_id": "9999"}},
        {"name": "delete_everything"},
    ]
    agent = AgentDefinition(
        name="a",
        tools=["query_order"],
        script=[{"tool_calls": calls}, "Sorry, I could not find it."],
    )
    run, history, _ = run_agent(agent)
    results = [m for m in history if isinstance(m, ToolResult)]
    assert [r.is_error for r in results] == [True, True, True]
    assert "order_id" in results[0].content
    assert "no order 9999" in results[1].content
    assert "no tool named" in results[2].content
    assert run.status == "completed" and history[-1].text == "Sorry, I could not find it."


def test_a_slow_tool_times_out_as_a_tool_error() -> None:
    @function_tool
    async def slow(seconds: float) -> str:
        """Sleeps."""
        await asyncio.sleep(seconds)
        return "done"

    registry = ToolRegistry()
    registry.add(slow)
    agent = AgentDefinition(
        name="a",
        tools=["slow"],
        limits=Limits(tool_timeout_seconds=0.05),
        script=[{"tool_calls": [{"name": "slow", "arguments": {"seconds": 5}}]}, "ok"],
    )
    _, history, _ = run_agent(agent, tools=registry)
    result = next(m for m in history if isinstance(m, ToolResult))
    assert result.is_error and "did not finish within 0.05 s" in result.content


def test_tool_schemas_come_from_type_hints() -> None:
    spec = build_registry().get("query_order").spec
    assert spec.parameters["properties"]["order_id"]["type"] == "string"
    assert spec.parameters["required"] == ["order_id"]
    assert spec.description.startswith("Looks an order up")


def test_a_tools_annotations_hold_in_its_schema_and_its_validation() -> None:
    @function_tool
    def refund(
        order_id: Annotated[
            str, Field(description="The order, as on the receipt.", min_length=4, pattern=r"^\d+$")
        ],
        cents: Annotated[int, Field(gt=0, description="How much.")] = 100,
    ) -> str:
        """Refunds an order."""
        return f"refunded {cents} on {order_id}"

    parameters = refund.spec.parameters
    assert parameters["additionalProperties"] is False
    assert parameters["properties"]["order_id"]["description"] == "The order, as on the receipt."
    assert parameters["properties"]["order_id"]["minLength"] == 4
    assert parameters["properties"]["cents"]["exclusiveMinimum"] == 0

    def invoke(arguments: dict) -> ToolResult:
        call = ToolCall(call_id="c", name="refund", arguments=json.dumps(arguments))
        return asyncio.run(refund.invoke(call, 5))

    assert invoke({"order_id": "1001"}).content == "refunded 100 on 1001"
    for bad in (
        {"order_id": "12"},
        {"order_id": "abcd"},
        {"order_id": "1001", "cents": 0},
        {"order_id": "1001", "coupon": "FREE"},
    ):
        result = invoke(bad)
        assert result.is_error and "invalid arguments for refund" in result.content, bad


class Failing(Provider):
    vendor = "failing"

    def __init__(self, errors: list[Exception]) -> None:
        self.errors, self.calls = errors, 0

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return ModelResponse(parts=[AssistantText(text="recovered")], model="m")


def test_transient_provider_errors_are_retried_within_the_bound() -> None:
    provider = Failing([RateLimited("slow down", retry_after=0), ProviderUnavailable("502")])
    run, history, _ = run_agent(AgentDefinition(name="a"), provider=provider)
    assert run.status == "completed" and history[-1].text == "recovered"
    assert provider.calls == 3


def test_a_provider_error_that_persists_fails_the_run_with_a_reason() -> None:
    provider = Failing([BadRequest("context too long", status=400)])
    run, history, _ = run_agent(AgentDefinition(name="a"), provider=provider)
    assert run.status == "failed" and "context too long" in run.reason
    assert provider.calls == 1 and kinds(history) == ["user_text"]


def test_retry_waits_as_long_as_retry_after_says_up_to_the_cap() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def call() -> str:
        if len(waits) < 2:
            raise RateLimited("429", retry_after=7 if not waits else 99)
        return "ok"

    policy = RetryPolicy(attempts=5, max_delay=20)
    assert asyncio.run(with_retries(call, policy, sleep)) == "ok"
    assert waits == [7, 20]


def test_the_scripted_provider_streams_deltas_that_add_up_to_its_answer() -> None:
    provider = ScriptedProvider(["Hello there, friend."])

    async def collect() -> tuple[str, ModelResponse]:
        text, final = "", None
        async for event in provider.stream(ModelRequest(messages=[UserText(text="hi")])):
            if isinstance(event, ModelResponse):
                final = event
            else:
                text += event.text
        return text, final

    text, final = asyncio.run(collect())
    assert text == "Hello there, friend." == final.parts[0].text


def test_the_script_restarts_every_turn_and_follows_the_messages() -> None:
    provider = ScriptedProvider(["first", {"tool_calls": [{"name": "t"}]}])
    turn = [UserText(text="a")]
    first = asyncio.run(provider.complete(ModelRequest(messages=turn)))
    assert first.parts[0].text == "first"
    second = asyncio.run(provider.complete(ModelRequest(messages=[*turn, *first.parts])))
    assert isinstance(second.parts[0], ToolCall)
    again = asyncio.run(
        provider.complete(ModelRequest(messages=[*turn, *first.parts, UserText(text="b")]))
    )
    assert again.parts[0].text == "first"


# In a fresh interpreter, so the SDKs are not imported yet: the event loop counts its
# ticks while the first provider of each vendor is made.
LOOP_WHILE_AN_SDK_LOADS = """
import asyncio
from actors.engine.agents import AgentDefinition
from actors.engine.recipes import Providers, VendorAccess

async def main():
    ticks = 0
    async def tick():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1
    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.02)
    providers = Providers(VendorAccess(openai_api_key="k", anthropic_api_key="k"))
    counts = []
    for vendor in ("anthropic", "openai"):
        before = ticks
        await providers.for_agent(AgentDefinition(name="a", model=vendor + ":m"))
        counts.append(ticks - before)
    ticker.cancel()
    print(*counts)

asyncio.run(main())
"""


def test_the_event_loop_goes_on_while_a_vendors_sdk_loads() -> None:
    # Importing an SDK and making its client took seconds on a busy host; on the event
    # loop, daprd's health probe went unanswered and the host lost its actors mid-step.
    done = subprocess.run(
        [sys.executable, "-c", LOOP_WHILE_AN_SDK_LOADS],
        timeout=60,
        capture_output=True,
        text=True,
        check=True,
    )
    anthropic_ticks, openai_ticks = map(int, done.stdout.split())
    assert anthropic_ticks > 0 and openai_ticks > 0
