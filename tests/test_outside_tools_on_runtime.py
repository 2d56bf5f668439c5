"""Tools outside the host, on the real runtime: the README's agent file, as written, calls
a Python tool, a service that runs as a Dapr app (tests/fakes/tool_service.py), an MCP
server that runs as a Dapr app (tests/fakes/mcp_docs.py), each with its own daprd, and
another agent on a child thread, in the embedded shape and with the gateway and the actor
host apart."""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_AGENTS, Api, make_stack_config
from tests.dapr_peers import PeerApp, local_secret_store
from threadhost.processes import Process, free_port
from threadhost.runtime import PROJECT_ROOT
from threadhost.stack import Stack


def readme_agent(name: str) -> dict:
    """The agent file the README shows under `<!-- agent: NAME -->`."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    block = re.search(rf"<!-- agent: {name} -->\n```json\n(.*?)\n```", readme, re.S)
    assert block, f"the README shows no agent {name}"
    return json.loads(block.group(1))


# Beside the README's agent: one whose services fail, each in its own way.
FAILING = {
    "name": "failing-desk",
    "limits": {"tool_timeout_seconds": 5},
    "service_tools": [
        {"name": "broken", "app_id": "billing", "method": "tools/broken"},
        {"name": "gone", "app_id": "nobody-here", "method": "tools/x"},
        {"name": "slow", "app_id": "billing", "method": "tools/slow", "timeout_seconds": 1},
    ],
    "script": [
        {"tool_calls": [{"name": "broken"}, {"name": "gone"}, {"name": "slow"}]},
        "The ledger is down; I will try again later.",
    ],
}


# An MCP server reached by URL, whose bearer token is a secret of the host's Dapr secret
# store: the agent file names the secret, never the token.
DOCS_TOKEN = "tok-from-the-secret-store-7"


@dataclass
class World:
    stack: Stack
    api: Api
    billing: PeerApp


@pytest.fixture(scope="module", params=["embedded", "split"])
def world(
    request: pytest.FixtureRequest, dapr_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    folder = tmp_path_factory.mktemp(f"outside-{request.param}")
    agents = folder / "agents"
    agents.mkdir()
    (agents / "desk.json").write_text(json.dumps(readme_agent("desk")))
    (agents / "failing-desk.json").write_text(json.dumps(FAILING))
    docs_port = free_port()
    (agents / "docs-by-url.json").write_text(
        json.dumps(
            {
                "name": "docs-by-url",
                "mcp_servers": [
                    {
                        "name": "docs",
                        "url": f"http://127.0.0.1:{docs_port}/mcp",
                        "prefix": "docs_",
                        "headers_secret": "docs-headers",
                    }
                ],
                "script": [
                    {
                        "tool_calls": [
                            {"name": "docs_search_docs", "arguments": {"query": "shipping"}}
                        ]
                    },
                    "Found it.",
                ],
            }
        )
    )
    dirs = [*json.loads(TEST_AGENTS["THREADHOST_AGENTS_DIRS"]), str(agents)]
    config = make_stack_config(
        dapr_bin,
        folder,
        uuid.uuid4().hex[:10],
        env={"THREADHOST_AGENTS_DIRS": json.dumps(dirs), "THREADHOST_SECRET_STORE": "localsecrets"},
    )
    config.extra_resources.append(
        local_secret_store(folder, {"docs-headers": {"authorization": f"Bearer {DOCS_TOKEN}"}})
    )
    logs = config.data_dir / "logs"
    peers: list[PeerApp] = []
    docs = Process(
        "docs-by-url",
        [sys.executable, "-m", "tests.fakes.mcp_docs", "http", str(docs_port), DOCS_TOKEN],
        logs,
        cwd=PROJECT_ROOT,
    )
    with Stack(config, split=request.param == "split") as stack:
        try:
            docs.wait_http_ok(f"http://127.0.0.1:{docs_port}/health", 30)
            peers.append(
                PeerApp(
                    "billing", "tests.fakes.tool_service", "{port}", bin_dir=dapr_bin, logs=logs
                )
            )
            peers.append(
                PeerApp(
                    "docs-mcp",
                    "tests.fakes.mcp_docs",
                    "http",
                    "{port}",
                    bin_dir=dapr_bin,
                    logs=logs,
                )
            )
            yield World(stack, Api(stack.api.url), peers[0])
        finally:
            for peer in peers:
                peer.stop()
            docs.stop()


def _results(api: Api, thread: str) -> dict[str, dict]:
    return {m["tool_name"]: m for m in api.messages(thread) if m["role"] == "tool"}


def test_the_readme_agent_uses_a_python_tool_a_service_and_an_mcp_server(world: World) -> None:
    api = world.api
    thread = api.create_thread(agent="desk")
    answer = api.say(thread, "Where are my order 1001 and its invoice, and can I return it?")
    assert answer["reply"] == (
        "Order 1001 has shipped and is due in 2 days, invoice INV-1001 "
        "is paid, and items can be returned within 30 days."
    )
    results = _results(api, thread)
    assert set(results) == {"query_order", "lookup_invoice", "docs_search_docs", "ask_support"}
    assert not any(r["is_error"] for r in results.values()), results
    # The support agent answered on a child thread of the same owner.
    assert results["ask_support"]["content"] == (
        "Order 1001 has shipped and is with the carrier; it is due in 2 days."
    )
    [child] = answer["run"]["children"]
    assert (child["agent"], child["status"]) == ("support", "completed")
    assert api.http.get(f"/v1/threads/{child['thread_id']}").status_code == 200
    assert json.loads(results["lookup_invoice"]["content"])["status"] == "paid"
    assert results["docs_search_docs"]["content"] == (
        "returns: Items can be returned within 30 days."
    )
    # The service got the call through Dapr from the actor host, with who made it.
    run_id = answer["run"]["run_id"]
    call_id = results["lookup_invoice"]["call_id"]
    [seen] = [
        r
        for r in httpx.get(f"{world.billing.url}/seen").json()
        if r["path"] == "/tools/invoices/lookup" and r["headers"]["threadhost-run-id"] == run_id
    ]
    assert seen["headers"]["dapr-caller-app-id"] == world.stack.config.actors_app_id
    assert seen["headers"]["threadhost-thread-id"] == thread
    assert seen["headers"]["idempotency-key"] == f"{run_id}.{call_id}"
    assert json.loads(seen["body"]) == {"invoice_id": "INV-1001"}
    # The run keeps where each call went.
    created = next(e for e in api.events(thread, run_id) if e["type"] == "run.created")
    assert created["data"]["tools"] == [
        "query_order",
        "lookup_invoice",
        "docs_search_docs",
        "docs_pages_delete",
        "ask_support",
    ]


def test_a_service_that_fails_times_out_or_is_not_there_tells_the_model(world: World) -> None:
    api = world.api
    thread = api.create_thread(agent="failing-desk")
    answer = api.say(thread, "How much do I owe?")
    assert answer["run"]["status"] == "completed"
    assert answer["reply"] == "The ledger is down; I will try again later."
    results = _results(api, thread)
    assert all(r["is_error"] for r in results.values())
    assert "answered 500" in results["broken"]["content"]
    assert "the ledger database is down" in results["broken"]["content"]
    assert "did not answer within 1 s" in results["slow"]["content"]
    # Dapr's own answer names what went wrong.
    assert "nobody-here" in results["gone"]["content"], results["gone"]["content"]


def test_an_mcp_servers_headers_come_from_the_hosts_secret_store(world: World) -> None:
    api = world.api
    thread = api.create_thread(agent="docs-by-url")
    assert api.say(thread, "How fast do you ship?")["reply"] == "Found it."
    [result] = _results(api, thread).values()
    assert (result["content"], result["is_error"]) == (
        "shipping: Orders ship within 2 days.",
        False,
    )
