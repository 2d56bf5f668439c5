"""Tools from outside the actor host, as an agent declares them and as a run keeps them.

Other agents are tools too: `agent_tools` run another agent on a child thread and wait for
its answer; `handoffs` pass the rest of the run to another agent.

An agent may name three kinds of outside tool besides its Python functions:
- a Dapr service method (`service_tools`): one tool per method, with its own schema, called
  through the actor host's sidecar (service invocation: mTLS, access control, resiliency);
- an MCP server (`mcp_servers`): every tool it lists, reached over streamable HTTP by URL
  or by Dapr app-id, or over stdio by a command the host starts;
- another team's agent over A2A (`a2a_agents`): one tool each, reached by URL or app-id.

A run keeps, for each outside tool, the route its calls take (which app and method, which
server and which tool there, and the server's version when the list was read), so a run
resumed on another host or after a restart reaches the same place.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TOOL_NAME = r"^[A-Za-z0-9_-]{1,64}$"
_NOT_IN_A_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]")


def object_schema(parameters: dict[str, Any]) -> dict[str, Any]:
    if parameters.get("type") != "object":
        raise ValueError('must be a JSON schema of "type": "object"')
    return parameters


class ServiceToolDefinition(BaseModel):
    """One method of a Dapr app, offered to the model as a tool."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOOL_NAME)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    # The target's Dapr app-id (`app` or `app.namespace`), and the method's path there.
    app_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    method: str = Field(min_length=1, max_length=512)
    # POST, PUT and PATCH send the arguments as a JSON body; GET and DELETE as the query.
    verb: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    # None: the agent's `limits.tool_timeout_seconds`.
    timeout_seconds: float | None = Field(default=None, gt=0)

    @field_validator("parameters")
    @classmethod
    def _an_object(cls, parameters: dict[str, Any]) -> dict[str, Any]:
        return object_schema(parameters)

    @field_validator("method")
    @classmethod
    def _a_path(cls, method: str) -> str:
        if ".." in method.split("/") or "?" in method or "#" in method:
            raise ValueError("must be a plain path (no '..', query or fragment)")
        return method.lstrip("/")


class McpServerDefinition(BaseModel):
    """An MCP server whose tools the agent offers to the model. Exactly one of `url`
    (streamable HTTP), `app_id` (streamable HTTP through Dapr service invocation, at
    `path`) and `command` (stdio, started by the actor host)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    url: str | None = Field(default=None, pattern=r"^https?://")
    app_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    path: str = "mcp"
    command: list[str] | None = Field(default=None, min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    # A secret (of the host's Dapr secret store) whose keys and values are HTTP headers
    # sent with every request to the server: where an API key belongs.
    headers_secret: str | None = None
    # Only these of the server's tools (by their name at the server); None: all.
    tools: list[str] | None = None
    # Put before each tool's name as the model sees it, e.g. "docs_".
    prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,32}$")
    # For each call, and for reading the tool list; None: the agent's tool timeout.
    timeout_seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_way_to_reach_it(self) -> McpServerDefinition:
        ways = [w for w in ("url", "app_id", "command") if getattr(self, w) is not None]
        if len(ways) != 1:
            raise ValueError("give exactly one of url, app_id and command")
        if self.headers_secret is not None and self.command is not None:
            raise ValueError("headers_secret is for servers reached over HTTP")
        return self

    def tool_name(self, name_at_server: str) -> str:
        """The name the model sees: the prefix, then the server's name with what a vendor
        refuses in a tool name made an underscore."""
        return _NOT_IN_A_TOOL_NAME.sub("_", self.prefix + name_at_server)[:64]


class RemoteAgentDefinition(BaseModel):
    """An agent another team serves over A2A (protocol 1.0, JSON-RPC), offered as a tool:
    a call sends its `input` as a message, and the task's answer is the result. Exactly
    one of `url` (the agent's JSON-RPC endpoint) and `app_id` (the same through Dapr
    service invocation, at `path`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOOL_NAME)
    description: str = ""
    url: str | None = Field(default=None, pattern=r"^https?://")
    app_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    path: str = Field(default="", max_length=512)
    # A secret (of the host's Dapr secret store) whose keys and values are HTTP headers
    # sent with every request: where a bearer token belongs.
    headers_secret: str | None = None
    # For each call; None: the agent's tool timeout.
    timeout_seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_way_to_reach_it(self) -> RemoteAgentDefinition:
        if (self.url is None) == (self.app_id is None):
            raise ValueError("give exactly one of url and app_id")
        if ".." in self.path.split("/") or "?" in self.path or "#" in self.path:
            raise ValueError("path must be a plain path (no '..', query or fragment)")
        return self


class ServiceRoute(BaseModel):
    kind: Literal["service"] = "service"
    app_id: str
    method: str
    verb: str
    timeout_seconds: float | None = None


class McpRoute(BaseModel):
    kind: Literal["mcp"] = "mcp"
    # The server's name in the agent's definition (which the run keeps), the tool's name
    # there, and the version the server gave when its tools were listed.
    server: str
    tool: str
    server_version: str | None = None


class RemoteAgentRoute(BaseModel):
    kind: Literal["a2a"] = "a2a"
    # The remote agent's name in the agent's definition (which the run keeps).
    agent: str


class AgentToolDefinition(BaseModel):
    """Another agent, offered as a tool: a call starts a run of it on a child thread."""

    model_config = ConfigDict(extra="forbid")

    agent: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    # The name the model sees; by default ask_<agent>.
    name: str | None = Field(default=None, pattern=TOOL_NAME)
    description: str = ""

    @property
    def tool_name(self) -> str:
        return self.name or _NOT_IN_A_TOOL_NAME.sub("_", f"ask_{self.agent}")[:64]


def handoff_tool_name(agent: str) -> str:
    return _NOT_IN_A_TOOL_NAME.sub("_", f"transfer_to_{agent}")[:64]


class AgentRoute(BaseModel):
    kind: Literal["agent"] = "agent"
    agent: str


class HandoffRoute(BaseModel):
    kind: Literal["handoff"] = "handoff"
    agent: str


ToolRoute = ServiceRoute | McpRoute | RemoteAgentRoute | AgentRoute | HandoffRoute


class McpUnavailable(Exception):
    """An MCP server could not be reached, or broke off."""
