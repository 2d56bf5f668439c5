"""A run's tool set: what the model may call in this run, fixed when the run is created.

A run keeps the whole set it started with (names, schemas, who executes each call and
whether a person must approve it), so it resumes with the same tools even after the
agent's definition changed or the user switched a tool off for later turns.

Eight kinds of tool:
- `function`: a Python function of the actor host, run as a step (see tools.py);
- `service`: a method of another Dapr app, `mcp`: a tool of an MCP server, and `a2a`:
  another team's agent over A2A, each run as a step like a function, through the route
  the run keeps (see tool_sources.py);
- `handoff`: passes the rest of the run to another agent (a step too);
- `agent`: another agent, run on a child thread; the run waits for its answer;
- `client`: declared by the caller for one turn and executed by the caller, who submits
  the result (the run waits for it);
- `input`: the built-in `ask_user`, which asks the user a question (the run waits for the
  answer);
- `followup`: the built-in `schedule_followup`, `list_followups` and `cancel_followup`,
  which the thread service carries out on the thread (see followups.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from actors.engine.agents import AgentDefinition
from actors.engine.followups import FOLLOWUP_TOOLS, TOOL_SPECS
from actors.engine.provider import ToolSpec
from actors.engine.text import JsonObject, Text
from actors.engine.tool_sources import (
    AgentRoute,
    HandoffRoute,
    ToolRoute,
    handoff_tool_name,
    object_schema,
)
from actors.engine.tools import ToolRegistry

ToolKind = Literal[
    "function", "service", "mcp", "a2a", "handoff", "agent", "client", "input", "followup"
]
# The kinds the actor host runs itself, as a step of the run.
HOST_KINDS: frozenset[str] = frozenset({"function", "service", "mcp", "a2a", "handoff", "followup"})
ASK_USER = "ask_user"
ASK_USER_SPEC = ToolSpec(
    name=ASK_USER,
    description="Asks the user a question and waits for their answer. Use it when you "
    "need a detail only the user can give.",
    parameters={
        "type": "object",
        "properties": {"question": {"type": "string"}},
        "required": ["question"],
    },
)


class RunTool(BaseModel):
    spec: ToolSpec
    kind: ToolKind = "function"
    # A person approves each call before it runs (the kinds the host runs).
    needs_approval: bool = False
    # Where the calls of a `service`, `mcp`, `agent` or `handoff` tool go.
    route: ToolRoute | None = Field(default=None, discriminator="kind")

    @property
    def name(self) -> str:
        return self.spec.name


class ClientTool(BaseModel):
    """A tool the caller declares for one turn and executes itself."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: Text = Field(default="", max_length=1024)
    # The arguments' JSON schema: an object, as every vendor wants.
    parameters: JsonObject = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        json_schema_extra={"properties": {"type": {"const": "object"}}, "required": ["type"]},
    )

    @field_validator("parameters")
    @classmethod
    def _an_object(cls, parameters: dict[str, Any]) -> dict[str, Any]:
        return object_schema(parameters)


def _agent_tools(agent: AgentDefinition) -> list[RunTool]:
    """The agent's other agents, as tools: those it asks, and those it hands off to."""
    asked = [
        RunTool(
            spec=ToolSpec(
                name=tool.tool_name,
                description=tool.description
                or f"Asks the agent {tool.agent} and returns its answer.",
                parameters={
                    "type": "object",
                    "required": ["input"],
                    "properties": {
                        "input": {
                            "type": "string",
                            "description": "The whole request: the agent does not see "
                            "this conversation.",
                        }
                    },
                },
            ),
            kind="agent",
            route=AgentRoute(agent=tool.agent),
        )
        for tool in agent.agent_tools
    ]
    handed = [
        RunTool(
            spec=ToolSpec(
                name=handoff_tool_name(other),
                description=(
                    f"Hands the conversation to the agent {other}, which answers from here on."
                ),
                parameters={"type": "object", "properties": {"reason": {"type": "string"}}},
            ),
            kind="handoff",
            route=HandoffRoute(agent=other),
        )
        for other in agent.handoffs
    ]
    return asked + handed


client_tools_adapter: TypeAdapter[list[ClientTool]] = TypeAdapter(list[ClientTool])


class ToolSetError(ValueError):
    """A turn's tools do not fit its agent: a clash of names, or an unknown tool."""


def build_tool_set(
    agent: AgentDefinition,
    registry: ToolRegistry,
    client_tools: Sequence[ClientTool] = (),
    disabled: Sequence[str] = (),
    outside: Sequence[RunTool] = (),
) -> list[RunTool]:
    """The agent's tools minus those switched off for this turn, plus the turn's client
    tools. Agent tools the registry does not know are left out (the model cannot call
    them); `outside` are the agent's service and MCP tools as they were found (an MCP
    server that could not be reached adds none); a client tool may not take an agent
    tool's name. An outside tool that takes a name already given is left out."""
    outside = [*outside, *_agent_tools(agent)]
    agent_names = {*agent.tools, *(t.name for t in agent.service_tools), *(t.name for t in outside)}
    unknown = sorted(set(disabled) - agent_names)
    if unknown:
        raise ToolSetError(f"the agent has no tool named {', '.join(unknown)}")
    tools: list[RunTool] = []
    for name in agent.tools:
        if name in disabled:
            continue
        if name == ASK_USER:
            tools.append(RunTool(spec=ASK_USER_SPEC, kind="input"))
        elif name in FOLLOWUP_TOOLS:
            tools.append(
                RunTool(
                    spec=TOOL_SPECS[name],
                    kind="followup",
                    needs_approval=name in agent.approval_required,
                )
            )
        elif (tool := registry.get(name)) is not None:
            tools.append(RunTool(spec=tool.spec, needs_approval=name in agent.approval_required))
    named = set(agent.tools)
    for found in outside:
        if found.name in disabled or found.name in named:
            continue
        named.add(found.name)
        tools.append(
            found.model_copy(update={"needs_approval": found.name in agent.approval_required})
        )
    taken = {tool.name for tool in tools} | agent_names
    seen: set[str] = set()
    for client in client_tools:
        if client.name in taken or client.name in seen:
            raise ToolSetError(f"client tool {client.name!r} clashes with another tool's name")
        seen.add(client.name)
        tools.append(
            RunTool(
                spec=ToolSpec(
                    name=client.name, description=client.description, parameters=client.parameters
                ),
                kind="client",
            )
        )
    return tools
