"""The MCP door: threadhost's agents as MCP tools, over streamable HTTP at `/v1/mcp`.

Each agent is a tool `ask_<agent>` taking a `message` and, to continue a conversation, a
`thread_id`. A call is a turn of that thread, as `POST /v1/threads/{id}/messages` in wait
mode: the caller is authenticated as on the rest of the API (a bearer JWT, or a Dapr
service's identity), owns the threads it starts, and is rate limited the same way. The
answer is the run's reply, with the thread and run in its structured content; a run that
waits (an approval, a question, a client tool) says what it waits for and which run to
resume. Stateless (no MCP session lives in a replica), so any gateway replica serves any
call. Uses the official `mcp` SDK's server.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from actors.engine.agents import AgentCatalog
from actors.engine.messages import AssistantText
from gateway.auth import Authenticator, Caller
from gateway.deps import Door
from gateway.problems import Problem
from gateway.thread_client import ThreadClient
from gateway.turn import TurnPlan, take_turn
from threadhost.common.ids import THREAD_REF_PATTERN
from threadhost.common.settings import Settings

# A thread named by a tool's caller: an id, checked before any call is made.
ThreadArgument = Annotated[
    str | None,
    Field(
        pattern=THREAD_REF_PATTERN,
        description=(
            "The thread_id of an earlier answer, to continue that conversation; or key: "
            "and a key of yours, for your thread of that key (opened if there is none)."
        ),
    ),
]

PATH = "/v1/mcp"


class McpDoor:
    """The MCP server and the ASGI app to mount at /mcp (authenticated first)."""

    def __init__(self, catalog: AgentCatalog, state: Any) -> None:
        # The gateway's app state: its thread client and authenticator (inside the MCP
        # app, a request's `app` is the MCP app).
        self._state = state
        self.server = MCPServer(
            "threadhost", version="0.1.0", instructions="Each tool asks one of threadhost's agents."
        )
        for name in catalog.names():
            self.server.add_tool(
                self._tool(name), name=_tool_name(name), description=_description(catalog, name)
            )
        # Stateless and JSON: no session lives in one replica. The gateway authenticates
        # every call, so a browser page on another origin gets nothing it could not get
        # from /v1 (the SDK's DNS-rebinding check would refuse every cluster host name).
        self._app = self.server.streamable_http_app(
            streamable_http_path=PATH,
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )

    def session_manager(self) -> Any:
        """Run by whoever serves the door (gateway/app.py's LazyMcpDoor): a routed ASGI
        app's own lifespan does not run."""
        return self.server.session_manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            authenticator: Authenticator = self._state.authenticator
            try:
                caller = await authenticator.caller(Request(scope))
            except Problem as problem:
                await problem.response()(scope, receive, send)
                return
            # For the tool that serves the request: the caller, checked once.
            scope.setdefault("state", {})["caller"] = caller
        await self._app(scope, receive, send)

    def _tool(self, agent: str) -> Any:
        state = self._state

        async def ask(
            message: str, ctx: Context, thread_id: ThreadArgument = None
        ) -> dict[str, Any]:
            try:
                request = ctx.request_context.request
                assert request is not None  # streamable HTTP: every call has its request
                caller: Caller = request.state.caller
                return await _turn(
                    state.thread_client, state.settings, caller, agent, message, thread_id
                )
            except Problem as problem:  # a thread not found, a limit: the caller reads why
                raise ToolError(f"{problem.title}: {problem.detail}".rstrip(": ")) from None

        ask.__doc__ = f"Asks the agent {agent}."
        return ask


async def _turn(
    client: ThreadClient,
    settings: Settings,
    caller: Caller,
    agent: str,
    message: str,
    thread_id: str | None,
) -> dict[str, Any]:
    taken = await take_turn(
        Door(client, caller, settings),
        TurnPlan(agent=agent, thread_id=thread_id, door="mcp", text=message, text_field="message"),
    )
    run, thread_id = taken.answer.run, taken.thread_id
    texts = [m.text for m in taken.answer.messages or [] if isinstance(m, AssistantText)]
    waits = [a.model_dump(exclude_none=True) for a in run.required_action]
    reply = texts[-1] if texts else None
    if run.status == "requires_action":
        reply = (
            f"{reply or ''}\n\n[run {run.run_id} of thread {thread_id} waits for: "
            + "; ".join(f"{a['type']} of {a['tool']} ({a['call_id']})" for a in waits)
            + f"; answer at /v1/threads/{thread_id}/runs/{run.run_id}/resume]"
        ).strip()
    elif run.status != "completed":
        reply = f"[the run {run.status}: {run.reason or 'no reason given'}]"
    return {
        "reply": reply,
        "thread_id": thread_id,
        "run_id": run.run_id,
        "status": run.status,
        "required_action": waits,
    }


def _tool_name(agent: str) -> str:
    # Agent names are [a-z0-9_-]: every one makes a tool name vendors accept.
    return "ask_" + agent.replace("-", "_")


def _description(catalog: AgentCatalog, agent: str) -> str:
    prompt = catalog.current(agent).system_prompt.strip()
    first = prompt.split(". ")[0].rstrip(".") if prompt else ""
    return (
        f"Asks threadhost's agent {agent!r}"
        + (f" ({first})" if first else "")
        + ". Give thread_id (from an earlier answer) to continue that conversation."
    )
