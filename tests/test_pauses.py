"""Pauses in the engine, in memory: runs that wait for a client tool, an approval or the
user, what a submission must look like, and deadlines."""

import asyncio
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from actors.engine.agents import AgentDefinition
from actors.engine.loop import run_until_done, start_run
from actors.engine.messages import Message, ToolResult, UserText
from actors.engine.pauses import (
    Answer,
    Approval,
    InvalidSubmission,
    NotWaiting,
    ToolOutput,
    expire_approvals,
    submit,
)
from actors.engine.recipes import Providers, VendorAccess
from actors.engine.retry import RetryPolicy
from actors.engine.run import RunRecord
from actors.engine.tool_set import ClientTool, ToolSetError, build_tool_set
from actors.engine.usage import DEFAULT_PRICES
from actors.tools import build_registry

AGENTS = Path(__file__).parent / "agents"
TOOLS = build_registry()
LOCATION = ClientTool(
    name="get_location",
    description="Where the user is",
    parameters={"type": "object", "properties": {"precision": {"type": "string"}}},
)


def agent(name: str) -> AgentDefinition:
    return AgentDefinition.model_validate_json((AGENTS / f"{name}.json").read_text())


def go(run: RunRecord, history: list[Message]) -> None:
    async def until_done() -> None:
        provider = await Providers(VendorAccess()).for_agent(run.agent)
        await run_until_done(run, history, provider, TOOLS, DEFAULT_PRICES, RetryPolicy(attempts=1))

    asyncio.run(until_done())


def started(name: str, client_tools=()) -> tuple[RunRecord, list[Message]]:
    definition = agent(name)
    run, _ = start_run(
        "run_1", "th_1", definition, build_tool_set(definition, TOOLS, list(client_tools)), 0
    )
    history: list[Message] = [UserText(text="hello")]
    go(run, history)
    return run, history


def answer(run: RunRecord, history: list[Message], *submissions) -> None:
    results, _ = submit(run, list(submissions), len(history))
    history.extend(results)
    go(run, history)


def test_a_client_tool_call_waits_for_the_callers_result() -> None:
    run, history = started("locator", [LOCATION])
    assert run.status == "requires_action"
    [action] = run.required_action
    assert (action.type, action.tool, json.loads(action.arguments)) == (
        "tool_result",
        "get_location",
        {"precision": "city"},
    )
    answer(run, history, ToolOutput(call_id=action.call_id, output="Berlin"))
    assert run.status == "completed"
    assert [m.kind for m in history] == ["user_text", "tool_call", "tool_result", "assistant_text"]
    assert history[2].content == "Berlin"


def test_an_approval_gated_call_waits_while_other_calls_run() -> None:
    run, history = started("approvals")
    # query_order ran at once; cancel_order waits for a person.
    assert [m.kind for m in history] == [
        "user_text",
        "assistant_text",
        "tool_call",
        "tool_call",
        "tool_result",
    ]
    assert history[4].name == "query_order"
    [action] = run.required_action
    assert (action.type, action.tool) == ("approval", "cancel_order")
    assert run.deadline is not None  # an hour, in its definition
    answer(run, history, Approval(call_id=action.call_id, approved=True))
    assert run.status == "completed"
    cancelled = next(m for m in history if isinstance(m, ToolResult) and m.name == "cancel_order")
    assert json.loads(cancelled.content)["status"] == "cancelled"


def test_a_denial_goes_back_to_the_model_with_its_reason() -> None:
    run, history = started("approvals")
    call_id = run.required_action[0].call_id
    answer(run, history, Approval(call_id=call_id, approved=False, reason="not without a refund"))
    assert run.status == "completed"
    denied = next(m for m in history if isinstance(m, ToolResult) and m.call_id == call_id)
    assert denied.is_error and denied.content == "Denied by the user: not without a refund"


def test_ask_user_waits_for_the_answer() -> None:
    run, history = started("asker")
    [action] = run.required_action
    assert (action.type, action.question) == ("input", "Which order do you mean?")
    answer(run, history, Answer(call_id=action.call_id, answer="Order 1002"))
    assert run.status == "completed"
    assert history[2].content == "Order 1002"
    assert history[-1].text == "Thanks, I have noted it."


@pytest.mark.parametrize(
    ("submissions", "problem"),
    [
        ([], "call_1_0 (tool_result) is not answered"),
        ([ToolOutput(call_id="call_9", output="x")], "call_9 is not a call this run waits for"),
        ([ToolOutput(call_id="call_1_0", output="x")] * 2, "call_1_0 is answered 2 times"),
        (
            [Approval(call_id="call_1_0", approved=True)],
            "call_1_0 waits for tool_result, not approval",
        ),
    ],
)
def test_a_submission_must_answer_every_pending_call_once(submissions, problem) -> None:
    run, history = started("locator", [LOCATION])
    before = run.model_dump()
    with pytest.raises(InvalidSubmission, match=re.escape(problem)):
        submit(run, submissions, len(history))
    assert run.model_dump() == before  # nothing changed


def test_a_run_that_is_not_waiting_refuses_a_submission() -> None:
    run, history = started("locator", [LOCATION])
    call_id = run.required_action[0].call_id
    answer(run, history, ToolOutput(call_id=call_id, output="Berlin"))
    with pytest.raises(NotWaiting, match="completed"):
        submit(run, [ToolOutput(call_id=call_id, output="Berlin")], len(history))


def test_an_undecided_approval_is_denied_once_its_deadline_passed() -> None:
    run, history = started("deadline")
    assert run.deadline is not None
    early = run.deadline - timedelta(seconds=1)
    assert expire_approvals(run, early, len(history)) == ([], [])
    results, events = expire_approvals(run, run.deadline, len(history))
    assert [r.is_error for r in results] == [True]
    assert [e.type for e in events] == ["approval.expired", "run.status"]
    assert run.status == "running" and not run.required_action and run.deadline is None


def test_a_run_keeps_the_tools_it_started_with() -> None:
    run, history = started("approvals")
    # The agent's definition changes while the run waits: the tool is gone from it.
    run.agent = run.agent.model_copy(update={"tools": ["query_order"], "version": 2})
    answer(run, history, Approval(call_id=run.required_action[0].call_id, approved=True))
    cancelled = [m for m in history if isinstance(m, ToolResult) and m.name == "cancel_order"]
    assert not cancelled[0].is_error


def test_a_turn_can_switch_tools_off_but_not_clash_with_them() -> None:
    definition = agent("approvals")
    names = [t.name for t in build_tool_set(definition, TOOLS, disabled=["cancel_order"])]
    assert names == ["query_order"]
    with pytest.raises(ToolSetError, match="clashes"):
        build_tool_set(definition, TOOLS, [ClientTool(name="query_order")])
    with pytest.raises(ToolSetError, match="no tool named nope"):
        build_tool_set(definition, TOOLS, disabled=["nope"])
