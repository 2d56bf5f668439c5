"""Agent definitions: named and versioned, loaded from a folder of JSON files or from Python.

A run stores the whole definition it started with, so it resumes with exactly that
version even after the file changed; the catalog only answers "what is current".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from actors.engine.context import ContextPolicy
from actors.engine.output import OutputSchema
from actors.engine.provider import ModelSettings
from actors.engine.scripted import ScriptedReply
from actors.engine.tool_sources import (
    AgentToolDefinition,
    McpServerDefinition,
    RemoteAgentDefinition,
    ServiceToolDefinition,
    handoff_tool_name,
)
from actors.engine.webhooks import WebhookDefinition


class Limits(BaseModel):
    max_steps: int = Field(default=16, ge=1)
    tool_timeout_seconds: float = Field(default=30.0, gt=0)
    # Per-run budgets, checked before each model call; None means no budget.
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)


class AgentDefinition(BaseModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    version: int = Field(default=1, ge=1)
    # What the agent does, for those who would call it (its A2A card); the system
    # prompt's first line when empty.
    description: str = Field(default="", max_length=2000)
    system_prompt: str = ""
    # A recipe: "scripted", "openai:<model>", "openai-responses:<model>", "anthropic:<model>".
    model: str = "scripted"
    # Recipes a caller may pick for a turn instead of `model` (a message's `model`, the
    # OpenAI doors' `<agent>@<recipe>`); none besides the agent's own unless listed.
    allowed_models: list[str] = Field(default_factory=list, max_length=64)
    # Tool names: function tools of the registry, and `ask_user` (questions to the user).
    tools: list[str] = Field(default_factory=list)
    # Methods of other Dapr apps, each a tool (called through the host's sidecar).
    service_tools: list[ServiceToolDefinition] = Field(default_factory=list)
    # MCP servers whose tools the model may call.
    mcp_servers: list[McpServerDefinition] = Field(default_factory=list)
    # Other teams' agents over A2A, each a tool whose call is a task of theirs.
    a2a_agents: list[RemoteAgentDefinition] = Field(default_factory=list)
    # Other agents as tools: each call runs the agent on a child thread and its answer is
    # the tool's result.
    agent_tools: list[AgentToolDefinition] = Field(default_factory=list)
    # Agents this one may hand the rest of a run to (a tool transfer_to_<agent> each).
    handoffs: list[str] = Field(default_factory=list)
    # Tools whose every call waits for a person's approval (any kind, by the name the
    # model sees); an undecided call is denied
    # once `approval_deadline_seconds` have passed (no deadline when None).
    approval_required: list[str] = Field(default_factory=list)
    approval_deadline_seconds: int | None = Field(default=None, ge=1)
    # A thread of this agent is erased this long after its last activity (None: kept).
    retention_seconds: int | None = Field(default=None, ge=1)
    limits: Limits = Field(default_factory=Limits)
    settings: ModelSettings = Field(default_factory=ModelSettings)
    # How much of the model's context window a request fills, and how older messages
    # are summarized when the thread no longer fits (engine/context.py).
    context: ContextPolicy = Field(default_factory=ContextPolicy)
    # The JSON schema every final answer must match (engine/output.py); a turn may ask
    # for another.
    output_schema: OutputSchema | None = None
    # Where the events of this agent's threads go as signed POSTs (engine/events.py).
    webhook: WebhookDefinition | None = None
    # Replies of the scripted model, for tests and demos; a string is a text reply.
    script: list[ScriptedReply] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_taken_once(self) -> AgentDefinition:
        names = self.tool_names()
        servers = [server.name for server in self.mcp_servers]
        for what, seen in (("tool", names), ("MCP server", servers)):
            twice = sorted({name for name in seen if seen.count(name) > 1})
            if twice:
                raise ValueError(f"{what} names given more than once: {', '.join(twice)}")
        return self

    def tool_names(self) -> list[str]:
        """The tool names the file defines, as the model sees them (an MCP server's come
        from the server)."""
        return [
            *self.tools,
            *(tool.name for tool in self.service_tools),
            *(remote.name for remote in self.a2a_agents),
            *(tool.tool_name for tool in self.agent_tools),
            *(handoff_tool_name(agent) for agent in self.handoffs),
        ]

    @field_validator("script", mode="before")
    @classmethod
    def _text_replies(cls, script: Any) -> Any:
        if isinstance(script, list):
            return [{"text": item} if isinstance(item, str) else item for item in script]
        return script


class UnknownAgent(LookupError):
    pass


class AgentCatalog:
    def __init__(self) -> None:
        self._versions: dict[str, dict[int, AgentDefinition]] = {}

    def add(self, agent: AgentDefinition) -> AgentDefinition:
        self._versions.setdefault(agent.name, {})[agent.version] = agent
        return agent

    def load_folder(self, folder: Path) -> None:
        for path in sorted(folder.glob("*.json")):
            self.add(AgentDefinition.model_validate(json.loads(path.read_text())))

    def names(self) -> list[str]:
        return sorted(self._versions)

    def current(self, name: str) -> AgentDefinition:
        versions = self._versions.get(name)
        if not versions:
            raise UnknownAgent(name)
        return versions[max(versions)]
