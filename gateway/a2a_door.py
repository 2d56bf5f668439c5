"""The A2A door (Agent2Agent protocol 1.0, JSON-RPC binding): every agent at
`/v1/a2a/{agent}`, with its card at `/v1/a2a/{agent}/.well-known/agent-card.json` (the default
agent's also at `/.well-known/agent-card.json`). A context is a thread, a task a run;
gateway/a2a_handler.py answers the methods, with the official `a2a-sdk`, imported at the
door's first request (it takes a second)."""

from __future__ import annotations

import asyncio
import importlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse

from actors.engine.agents import AgentCatalog
from gateway.deps import CatalogDep, DoorDep, SettingsDep, admitted
from gateway.problems import ModelNotFound, problem_responses
from threadhost.common.settings import Settings

router = APIRouter(tags=["a2a"])
AgentName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
CARD: dict[int | str, dict[str, Any]] = {
    200: {"description": "The agent's A2A agent card (AgentCard, protocol 1.0)"}
}


class LazyA2A:
    """The SDK's JSON-RPC dispatcher and the handler, made at the first request."""

    def __init__(self) -> None:
        self.module: Any = None
        self.dispatcher: Any = None
        self._making = asyncio.Lock()

    async def made(self) -> Any:
        if self.module is None:
            async with self._making:
                if self.module is None:
                    module = await asyncio.to_thread(importlib.import_module, "gateway.a2a_handler")
                    self.dispatcher = module.dispatcher()
                    self.module = module
        return self.module


async def _a2a(request: Request) -> LazyA2A:
    state = request.app.state
    if getattr(state, "a2a", None) is None:
        state.a2a = LazyA2A()
    return state.a2a


def _agent(catalog: AgentCatalog, name: str) -> Any:
    if name not in catalog.names():
        raise ModelNotFound(f"no agent named {name!r}: GET /v1/models lists them")
    return catalog.current(name)


async def _card(request: Request, name: str, catalog: AgentCatalog, settings: Settings) -> Response:
    await (await _a2a(request)).made()
    tasks = importlib.import_module("gateway.a2a_tasks")
    agent = _agent(catalog, name)
    url = str(request.base_url).rstrip("/") + f"/v1/a2a/{name}"
    card = tasks.card(
        agent, url, bearer=settings.auth_mode == "jwt", push=agent.webhook is not None
    )
    return JSONResponse(tasks.as_dict(card))


@router.get("/.well-known/agent-card.json", responses=CARD)
async def default_agent_card(
    request: Request, catalog: CatalogDep, settings: SettingsDep
) -> Response:
    """The default agent's card (THREADHOST_DEFAULT_AGENT): public, as discovery is."""
    return await _card(request, settings.default_agent, catalog, settings)


@router.get(
    "/v1/a2a/{agent}/.well-known/agent-card.json",
    responses={**CARD, **problem_responses(404)},
)
async def agent_card(
    agent: AgentName, request: Request, catalog: CatalogDep, settings: SettingsDep
) -> Response:
    """The agent's card: its name, description, skill (tagged with its tools), where its
    JSON-RPC endpoint is, and the bearer scheme when authentication is on."""
    return await _card(request, agent, catalog, settings)


@router.post(
    "/v1/a2a/{agent}",
    dependencies=[Depends(admitted)],
    responses={
        200: {
            "description": "A JSON-RPC 2.0 answer, or for SendStreamingMessage and "
            "SubscribeToTask a stream of them as server-sent events",
            "content": {"application/json": {}, "text/event-stream": {}},
        },
        **problem_responses(401, 403, 404, 429),
    },
)
async def a2a_jsonrpc(
    agent: AgentName, request: Request, door: DoorDep, catalog: CatalogDep
) -> Response:
    """The agent's A2A endpoint (JSON-RPC 2.0, methods of A2A 1.0: SendMessage,
    SendStreamingMessage, GetTask, ListTasks, CancelTask, SubscribeToTask and the task
    push notification configs). Authenticated as every route of callers; the caller owns
    the contexts (threads) and tasks (runs) it starts."""
    _agent(catalog, agent)
    lazy = await _a2a(request)
    module = await lazy.made()
    return await module.answer(lazy.dispatcher, request, module.A2ACall(door, agent))
