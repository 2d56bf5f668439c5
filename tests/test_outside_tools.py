"""Tools outside the actor host, in-process: a service reached over HTTP and an MCP server
(built with the `mcp` SDK) over streamable HTTP and over stdio, driven by the engine's one
loop with the scripted model. The same tools through Dapr: test_outside_tools_on_runtime.py."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from actors.engine.agents import AgentDefinition
from actors.engine.loop import run_until_done, start_run
from actors.engine.messages import Message, ToolResult, UserText
from actors.engine.outside_tools import OutsideTools
from actors.engine.run import RunRecord
from actors.engine.scripted import ScriptedProvider
from actors.engine.service_tools import Endpoint
from actors.engine.tool_set import build_tool_set
from actors.engine.usage import DEFAULT_PRICES
from actors.tools import build_registry
from tests.test_engine import NO_WAIT
from threadhost.processes import Process, free_port

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TOOLS = build_registry()


class LocalMesh:
    """Apps by app-id on loopback ports, as a sidecar would find them."""

    def __init__(self, apps: dict[str, str], secrets: dict[str, dict[str, str]] | None = None):
        self.apps, self.secrets = apps, secrets or {}

    def endpoint(self, app_id: str, path: str) -> Endpoint:
        base = self.apps.get(app_id, f"http://127.0.0.1:{free_port()}")  # nobody listens
        return Endpoint(url=f"{base}/{path}", headers={"x-mesh": "local"})

    async def secret(self, name: str) -> dict[str, str]:
        return self.secrets[name]


def _serve(tmp_path: Path, name: str, *argv: str, health: str) -> Process:
    process = Process(name, [sys.executable, "-m", *argv], tmp_path / "logs", cwd=PROJECT_ROOT)
    process.wait_http_ok(health, 30)
    return process


@pytest.fixture
def billing(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    process = _serve(
        tmp_path,
        "billing",
        "tests.fakes.tool_service",
        str(port),
        health=f"http://127.0.0.1:{port}/health",
    )
    yield f"http://127.0.0.1:{port}"
    process.stop()


def _docs_over_http(tmp_path: Path, port: int, *token: str) -> Process:
    return _serve(
        tmp_path,
        f"docs-{port}",
        "tests.fakes.mcp_docs",
        "http",
        str(port),
        *token,
        health=f"http://127.0.0.1:{port}/health",
    )


def _agent(**fields: object) -> AgentDefinition:
    return AgentDefinition.model_validate(
        {"name": "outside", "limits": {"tool_timeout_seconds": 5}, **fields}
    )


async def _run(
    agent: AgentDefinition, outside: OutsideTools, text: str = "hi"
) -> tuple[RunRecord, list[Message]]:
    history: list[Message] = [UserText(text=text)]
    tools = build_tool_set(agent, TOOLS, outside=await outside.tools_for(agent))
    run, _ = start_run("run_7", "th_7", agent, tools, 0)
    await run_until_done(
        run, history, ScriptedProvider(agent.script), TOOLS, DEFAULT_PRICES, NO_WAIT, outside
    )
    return run, history


def _results(history: list[Message]) -> dict[str, ToolResult]:
    return {m.name: m for m in history if isinstance(m, ToolResult)}


SERVICE_TOOLS = [
    {
        "name": "lookup_invoice",
        "description": "Finds an invoice.",
        "app_id": "billing",
        "method": "tools/invoices/lookup",
        "parameters": {"type": "object", "properties": {"invoice_id": {"type": "string"}}},
    },
    {"name": "stock", "app_id": "billing", "method": "tools/stock", "verb": "GET"},
    {"name": "broken", "app_id": "billing", "method": "tools/broken"},
    {"name": "reject", "app_id": "billing", "method": "tools/reject"},
    {"name": "slow", "app_id": "billing", "method": "tools/slow", "timeout_seconds": 0.5},
    {"name": "gone", "app_id": "nobody", "method": "tools/x"},
]


def test_a_service_tool_gets_the_arguments_and_who_calls(billing: str) -> None:
    agent = _agent(
        service_tools=SERVICE_TOOLS,
        script=[
            {
                "tool_calls": [
                    {"name": "lookup_invoice", "arguments": {"invoice_id": "INV-9 ü🙂"}},
                    {"name": "stock", "arguments": {"sku": "A/1 2"}},
                ]
            },
            "Invoice INV-9 is paid.",
        ],
    )

    async def scenario() -> tuple[RunRecord, list[Message]]:
        outside = OutsideTools(LocalMesh({"billing": billing}))
        try:
            return await _run(agent, outside)
        finally:
            await outside.aclose()

    run, history = asyncio.run(scenario())
    assert run.status == "completed"
    results = _results(history)
    assert json.loads(results["lookup_invoice"].content)["amount"] == 42.5
    assert json.loads(results["stock"].content) == {"sku": "A/1 2", "in_stock": 3}
    seen = httpx.get(f"{billing}/seen").json()
    lookup = next(r for r in seen if r["path"] == "/tools/invoices/lookup")
    assert json.loads(lookup["body"]) == {"invoice_id": "INV-9 ü🙂"}
    call_id = next(m.call_id for m in history if getattr(m, "name", "") == "lookup_invoice")
    assert lookup["headers"] | {"dapr-caller-app-id": None} == {
        "threadhost-thread-id": "th_7",
        "threadhost-run-id": "run_7",
        "threadhost-tool-call-id": call_id,
        "idempotency-key": f"run_7.{call_id}",
        "dapr-caller-app-id": None,
        "content-type": "application/json",
        # A thread of no service's end user: nobody to name.
        "threadhost-end-user": None,
        "threadhost-end-user-assertion": None,
    }
    assert next(r for r in seen if r["path"] == "/tools/stock")["query"] == {"sku": "A/1 2"}


def test_whatever_goes_wrong_with_a_service_goes_back_to_the_model(billing: str) -> None:
    agent = _agent(
        service_tools=SERVICE_TOOLS,
        script=[
            {
                "tool_calls": [{"name": name} for name in ("broken", "reject", "slow", "gone")]
                + [{"name": "lookup_invoice", "arguments": {"invoice_id": 1}}]
            },
            "Sorry, the ledger is down.",
        ],
    )

    async def scenario() -> tuple[RunRecord, list[Message]]:
        outside = OutsideTools(LocalMesh({"billing": billing}))
        try:
            return await _run(agent, outside)
        finally:
            await outside.aclose()

    run, history = asyncio.run(scenario())
    assert run.status == "completed"
    results = _results(history)
    assert all(results[name].is_error for name in ("broken", "reject", "slow", "gone"))
    assert "answered 500" in results["broken"].content
    assert "the ledger database is down" in results["broken"].content
    assert (
        "answered 404" in results["reject"].content
        and "no such invoice" in results["reject"].content
    )
    assert "did not answer within 0.5 s" in results["slow"].content
    assert "could not be reached" in results["gone"].content
    # Arguments that do not fit the declared schema never reach the service.
    assert results["lookup_invoice"].content == (
        "invalid arguments for lookup_invoice: invoice_id: 1 is not of type 'string'"
    )
    assert "/tools/invoices/lookup" not in {r["path"] for r in httpx.get(f"{billing}/seen").json()}


DOCS_SCRIPT = [
    {"tool_calls": [{"name": "docs_search_docs", "arguments": {"query": "return"}}]},
    {"tool_calls": [{"name": "docs_pages_delete", "arguments": {"page": "returns"}}]},
    "Done.",
]


@pytest.mark.parametrize("transport", ["http", "stdio"])
def test_an_mcp_servers_tools_are_the_models_filtered_and_prefixed(
    tmp_path: Path, transport: str
) -> None:
    port = free_port()
    server = _docs_over_http(tmp_path, port) if transport == "http" else None
    where: dict[str, object] = (
        {"url": f"http://127.0.0.1:{port}/mcp"}
        if transport == "http"
        else {"command": [sys.executable, "-m", "tests.fakes.mcp_docs", "stdio"]}
    )
    agent = _agent(
        mcp_servers=[
            {
                "name": "docs",
                "prefix": "docs_",
                **where,
                "tools": ["search_docs", "pages.delete", "who_calls"],
            }
        ],
        script=[{"tool_calls": [{"name": "docs_who_calls"}]}, *DOCS_SCRIPT],
    )

    async def scenario() -> tuple[RunRecord, list[Message]]:
        outside = OutsideTools(LocalMesh({}))
        try:
            return await _run(agent, outside)
        finally:
            await outside.aclose()

    try:
        run, history = asyncio.run(scenario())
    finally:
        if server is not None:
            server.stop()
    assert [t.name for t in run.tools or []] == [
        "docs_search_docs",
        "docs_pages_delete",
        "docs_who_calls",
    ]
    route = run.tools[0].route
    assert route is not None and route.model_dump() == {
        "kind": "mcp",
        "server": "docs",
        "tool": "search_docs",
        "server_version": "1.4.0",
    }
    results = _results(history)
    # The call names its thread, run and call, with the key a repeated step sends again.
    call_id = next(m.call_id for m in history if getattr(m, "name", "") == "docs_who_calls")
    assert results["docs_who_calls"].content == (
        f"threadhost/idempotency-key=run_7.{call_id} threadhost/run-id=run_7 "
        f"threadhost/thread-id=th_7 threadhost/tool-call-id={call_id}"
    )
    assert results["docs_search_docs"].content == "returns: Items can be returned within 30 days."
    assert results["docs_pages_delete"].content == "deleted returns"
    assert run.status == "completed"


def test_an_mcp_tool_list_is_read_once_and_a_server_that_stopped_fails_the_call_cleanly(
    tmp_path: Path,
) -> None:
    port = free_port()
    agent = _agent(
        mcp_servers=[
            {
                "name": "docs",
                "url": f"http://127.0.0.1:{port}/mcp",
                "prefix": "docs_",
                "headers_secret": "docs-key",
            }
        ],
        script=DOCS_SCRIPT[:1] + ["Done."],
    )
    # The server answers only with the header that the secret holds.
    mesh = LocalMesh({}, secrets={"docs-key": {"authorization": "Bearer k-1"}})

    async def scenario() -> None:
        outside = OutsideTools(mesh)
        server = await asyncio.to_thread(_docs_over_http, tmp_path, port, "k-1")
        try:
            first = await outside.tools_for(agent)
            await asyncio.to_thread(server.stop)
            # Kept for this agent version: a new run gets them with the server down...
            assert [t.name for t in await outside.tools_for(agent)] == [t.name for t in first]
            # ...and a call to it is an error for the model, not a failed run.
            run, history = await _run(agent, outside)
            assert run.status == "completed"
            [result] = _results(history).values()
            assert result.is_error and "MCP server docs" in result.content
            # Another version of the agent asks again, and gets nothing while it is down.
            newer = agent.model_copy(update={"version": 2})
            assert await outside.tools_for(newer) == []
            # Back up: the next call opens a new client.
            server = await asyncio.to_thread(_docs_over_http, tmp_path, port, "k-1")
            run, history = await _run(agent, outside)
            [result] = _results(history).values()
            assert not result.is_error, result.content
        finally:
            await outside.aclose()
            await asyncio.to_thread(server.stop)

    asyncio.run(scenario())


def test_an_approval_gated_mcp_tool_waits_like_any_other(tmp_path: Path) -> None:
    agent = _agent(
        mcp_servers=[
            {
                "name": "docs",
                "prefix": "docs_",
                "command": [sys.executable, "-m", "tests.fakes.mcp_docs", "stdio"],
            }
        ],
        approval_required=["docs_pages_delete"],
        script=DOCS_SCRIPT[1:],
    )

    async def scenario() -> RunRecord:
        outside = OutsideTools(LocalMesh({}))
        try:
            run, _ = await _run(agent, outside)
            return run
        finally:
            await outside.aclose()

    run = asyncio.run(scenario())
    assert run.status == "requires_action"
    [action] = run.required_action
    assert (action.type, action.tool) == ("approval", "docs_pages_delete")


def test_an_agent_names_each_tool_once() -> None:
    with pytest.raises(ValueError, match="given more than once: lookup_invoice"):
        _agent(tools=["lookup_invoice"], service_tools=SERVICE_TOOLS[:1])
    with pytest.raises(ValueError, match="exactly one of url, app_id and command"):
        _agent(mcp_servers=[{"name": "docs", "url": "http://x/mcp", "app_id": "docs"}])
