"""MCP servers' tools, through the official `mcp` SDK's client.

A host keeps one open client per server (a stdio server stays one process; an HTTP one
keeps its connections), in a task of its own so that any step may call through it. The
tools a server lists are read once per agent version and kept: a step does not list them
again. A server that cannot be reached or that fails a call gives that call an error
result; its client is dropped and the next call opens a new one. A server that cannot be
reached when a run starts adds no tools to that run, and is asked again at the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from actors.engine.messages import ToolCall, ToolResult
from actors.engine.provider import ToolSpec
from actors.engine.service_tools import Endpoint, ToolCallContext, json_arguments, tool_error
from actors.engine.tool_set import RunTool
from actors.engine.tool_sources import McpRoute, McpServerDefinition, McpUnavailable

log = logging.getLogger(__name__)

# Where the host finds an HTTP server: its URL, or the mesh's way to an app-id; with the
# headers of its secret.
Locate = Callable[[McpServerDefinition], Awaitable[Endpoint]]


class _OpenClient:
    """One MCP client session, entered and left in its own task (the SDK's task groups
    must be left by the task that entered them)."""

    def __init__(self, target: Any, http: httpx2.AsyncClient | None) -> None:
        self._target, self._http = target, http
        self._ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        self._done = asyncio.Event()
        self._task = asyncio.create_task(self._hold())

    async def _hold(self) -> None:
        try:
            async with Client(self._target) as client:
                self._ready.set_result(client)
                await self._done.wait()
        except BaseException as exc:  # noqa: BLE001 - reported to whoever waits for it
            if not self._ready.done():
                self._ready.set_exception(McpUnavailable(f"{type(exc).__name__}: {exc}"))
        finally:
            self._done.set()
            if self._http is not None:
                await self._http.aclose()

    @property
    def closed(self) -> bool:
        return self._done.is_set()

    async def client(self) -> Client:
        return await asyncio.shield(self._ready)

    async def close(self) -> None:
        self._done.set()
        with contextlib.suppress(BaseException):
            await self._task


class McpServers:
    """The host's clients of MCP servers and the tool lists they gave."""

    def __init__(self, locate: Locate) -> None:
        self._locate = locate
        self._open: dict[str, _OpenClient] = {}
        self._opening = asyncio.Lock()
        self._listed: dict[tuple[str, int, str], list[RunTool]] = {}

    async def tools(
        self, agent: str, version: int, server: McpServerDefinition, time_limit: float
    ) -> list[RunTool]:
        """The server's tools for this version of the agent, as the model sees them
        (filtered, prefixed); raises McpUnavailable."""
        key = (agent, version, server.name)
        if key not in self._listed:
            try:
                async with asyncio.timeout(time_limit):
                    client = await self._client(server)
                    listed = await _all_tools(client)
            except Exception as exc:  # noqa: BLE001 - whatever the way there raised
                await self._drop(server)
                raise McpUnavailable(_describe(exc, time_limit)) from exc
            version_there = client.server_info.version if client.server_info else None
            self._listed[key] = [
                RunTool(
                    spec=ToolSpec(
                        name=server.tool_name(tool.name),
                        description=tool.description or "",
                        parameters=tool.input_schema,
                    ),
                    kind="mcp",
                    route=McpRoute(
                        server=server.name, tool=tool.name, server_version=version_there
                    ),
                )
                for tool in listed
                if server.tools is None or tool.name in server.tools
            ]
        return self._listed[key]

    async def call(
        self,
        server: McpServerDefinition,
        route: McpRoute,
        call: ToolCall,
        time_limit: float,
        context: ToolCallContext,
    ) -> ToolResult:
        arguments = json_arguments(call)
        if isinstance(arguments, ToolResult):
            return arguments
        try:
            async with asyncio.timeout(time_limit):
                client = await self._client(server)
                result = await client.call_tool(route.tool, arguments, meta=context.mcp_meta())  # type: ignore[arg-type]
        except MCPError as exc:
            return tool_error(call, f"MCP server {server.name} refused the call: {exc}")
        except Exception as exc:  # noqa: BLE001 - a broken session raises what it has
            await self._drop(server)
            return tool_error(call, f"MCP server {server.name}: {_describe(exc, time_limit)}")
        content = "\n".join(_text_of(block) for block in result.content)
        if not content and result.structured_content is not None:
            content = json.dumps(result.structured_content)
        return ToolResult(
            call_id=call.call_id, name=call.name, content=content, is_error=bool(result.is_error)
        )

    async def _client(self, server: McpServerDefinition) -> Client:
        key = server.model_dump_json()
        async with self._opening:
            opened = self._open.get(key)
            if opened is None or opened.closed:
                opened = self._open[key] = _OpenClient(*await self._target(server))
        return await opened.client()

    async def _target(self, server: McpServerDefinition) -> tuple[Any, httpx2.AsyncClient | None]:
        if server.command is not None:
            command, *args = server.command
            return StdioServerParameters(command=command, args=args, env=server.env or None), None
        endpoint = await self._locate(server)
        # The SDK's own timeouts: a server may hold a response stream open for long.
        http = httpx2.AsyncClient(
            headers=endpoint.headers, timeout=httpx2.Timeout(30.0, read=300.0)
        )
        return streamable_http_client(endpoint.url, http_client=http), http

    async def _drop(self, server: McpServerDefinition) -> None:
        opened = self._open.pop(server.model_dump_json(), None)
        if opened is not None:
            await opened.close()

    async def aclose(self) -> None:
        for opened in list(self._open.values()):
            await opened.close()
        self._open.clear()


async def _all_tools(client: Client) -> list[Any]:
    tools, cursor = [], None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if cursor is None:
            return tools


def _text_of(block: Any) -> str:
    text = getattr(block, "text", None)
    return text if isinstance(text, str) else block.model_dump_json(exclude_none=True)


def _describe(exc: BaseException, time_limit: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {time_limit:g} s"
    return f"could not be reached or broke off ({type(exc).__name__}: {exc})"
