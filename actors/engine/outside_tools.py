"""The agent's tools that live outside the actor host: Dapr services, MCP servers and
other teams' agents over A2A.

The engine knows nothing of Dapr: it asks a `Mesh` (the actor host's sidecar, in
production) where an app-id's method is and for a secret's values, and sends plain HTTP
(or MCP) there.

The `mcp` SDK takes over a second to import: it is imported on a worker thread, by the
first agent that lists an MCP server, so the event loop never waits for it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from actors.engine.agents import AgentDefinition
from actors.engine.assertions import AssertionSigner
from actors.engine.messages import ToolCall, ToolResult
from actors.engine.provider import ToolSpec
from actors.engine.service_tools import Endpoint, ToolCallContext, call_service
from actors.engine.tool_set import RunTool
from actors.engine.tool_sources import (
    McpRoute,
    McpServerDefinition,
    McpUnavailable,
    RemoteAgentDefinition,
    RemoteAgentRoute,
    ServiceRoute,
)

if TYPE_CHECKING:
    from actors.engine.mcp_tools import McpServers

log = logging.getLogger(__name__)
# What a remote agent's tool takes: the message it is sent.
REMOTE_AGENT_PARAMETERS = {
    "type": "object",
    "required": ["input"],
    "properties": {"input": {"type": "string", "description": "What to ask the agent"}},
}


class Mesh(Protocol):
    """How the host reaches other apps by app-id, and reads secrets."""

    def endpoint(self, app_id: str, path: str) -> Endpoint: ...

    async def secret(self, name: str) -> dict[str, str]: ...


class OutsideTools:
    def __init__(
        self,
        mesh: Mesh,
        http: httpx.AsyncClient | None = None,
        signer: AssertionSigner | None = None,
    ) -> None:
        self._mesh = mesh
        self._http = http
        # Signs the end user's assertion a call carries (none without a key).
        self.signer = signer
        self._mcp: McpServers | None = None
        self._a2a: Any = None
        self._loading = asyncio.Lock()

    async def mcp(self) -> McpServers:
        if self._mcp is None:
            async with self._loading:
                if self._mcp is None:
                    module = await asyncio.to_thread(
                        importlib.import_module, "actors.engine.mcp_tools"
                    )
                    self._mcp = module.McpServers(self._locate)
        return self._mcp

    async def a2a(self) -> Any:
        """actors/engine/a2a_tools.py, imported on a worker thread at the first call."""
        if self._a2a is None:
            async with self._loading:
                if self._a2a is None:
                    self._a2a = await asyncio.to_thread(
                        importlib.import_module, "actors.engine.a2a_tools"
                    )
        return self._a2a

    def _client(self) -> httpx.AsyncClient:
        # Made on first use, inside the event loop that uses it.
        if self._http is None:
            self._http = httpx.AsyncClient(limits=httpx.Limits(max_connections=200))
        return self._http

    async def tools_for(self, agent: AgentDefinition) -> list[RunTool]:
        """The agent's service tools, and the tools its MCP servers list now (from what
        this host read before, for this version of the agent)."""
        tools = [
            RunTool(
                spec=ToolSpec(name=t.name, description=t.description, parameters=t.parameters),
                kind="service",
                route=ServiceRoute(
                    app_id=t.app_id, method=t.method, verb=t.verb, timeout_seconds=t.timeout_seconds
                ),
            )
            for t in agent.service_tools
        ]
        tools += [
            RunTool(
                spec=ToolSpec(
                    name=remote.name,
                    description=remote.description
                    or f"Asks {remote.name}, another team's agent, and returns its answer.",
                    parameters=REMOTE_AGENT_PARAMETERS,
                ),
                kind="a2a",
                route=RemoteAgentRoute(agent=remote.name),
            )
            for remote in agent.a2a_agents
        ]
        for server in agent.mcp_servers:
            limit = server.timeout_seconds or agent.limits.tool_timeout_seconds
            try:
                tools += await (await self.mcp()).tools(agent.name, agent.version, server, limit)
            except McpUnavailable as exc:
                log.warning(
                    "MCP server %s of agent %s: %s; its tools are left out of this run",
                    server.name,
                    agent.name,
                    exc,
                )
        return tools

    async def invoke(
        self, tool: RunTool, call: ToolCall, context: ToolCallContext, agent: AgentDefinition
    ) -> ToolResult:
        limit = agent.limits.tool_timeout_seconds
        route = tool.route
        if isinstance(route, ServiceRoute):
            endpoint = self._mesh.endpoint(route.app_id, route.method)
            return await call_service(
                self._client(),
                endpoint,
                route,
                tool.spec.parameters,
                call,
                context.signed(self.signer, route.app_id),
                route.timeout_seconds or limit,
            )
        if isinstance(route, McpRoute):
            server = next((s for s in agent.mcp_servers if s.name == route.server), None)
            if server is not None:
                servers = await self.mcp()
                # The assertion is for the server: its app-id, or its URL.
                audience = server.app_id or server.url or server.name
                return await servers.call(
                    server,
                    route,
                    call,
                    server.timeout_seconds or limit,
                    context.signed(self.signer, audience),
                )
        if isinstance(route, RemoteAgentRoute):
            remote = next((r for r in agent.a2a_agents if r.name == route.agent), None)
            if remote is not None:
                endpoint = await self._locate(remote)
                audience = remote.app_id or remote.url or remote.name
                return await (await self.a2a()).ask(
                    self._client(),
                    remote.name,
                    endpoint,
                    call,
                    context.signed(self.signer, audience),
                    remote.timeout_seconds or limit,
                )
        return ToolResult(
            call_id=call.call_id,
            name=call.name,
            is_error=True,
            content=f"{call.name} has no route in this run",
        )

    async def _locate(self, place: McpServerDefinition | RemoteAgentDefinition) -> Endpoint:
        """Where an MCP server or a remote agent is: its URL, or its app-id's path through
        the sidecar; with the headers of its secret, if it names one."""
        secret = place.headers_secret
        headers = await self._mesh.secret(secret) if secret else {}
        if place.url is not None:
            return Endpoint(url=place.url, headers=headers)
        assert place.app_id is not None
        found = self._mesh.endpoint(place.app_id, place.path)
        return Endpoint(url=found.url, headers={**found.headers, **headers})

    async def aclose(self) -> None:
        if self._mcp is not None:
            await self._mcp.aclose()
        if self._http is not None:
            await self._http.aclose()
