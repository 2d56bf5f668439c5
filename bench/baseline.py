"""The baseline: the common "agent as an API" service, FastAPI and Redis, no actors.

Each turn loads the thread's whole message list from one Redis key, runs the same engine
and agent in memory, and writes the whole list back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import redis.asyncio as redis
from fastapi import FastAPI
from pydantic import BaseModel

from actors.engine.agents import AgentDefinition
from actors.engine.loop import run_until_done, start_run
from actors.engine.messages import UserText, messages_adapter
from actors.engine.recipes import Providers, VendorAccess
from actors.engine.retry import RetryPolicy
from actors.engine.tool_set import build_tool_set
from actors.engine.usage import DEFAULT_PRICES
from actors.tools import build_registry

AGENT = AgentDefinition.model_validate(
    json.loads((Path(__file__).parent / "agents" / "bench.json").read_text())
)
TOOLS = build_registry()
TOOL_SET = build_tool_set(AGENT, TOOLS)
PROVIDERS = Providers(VendorAccess())
app = FastAPI()
store = redis.Redis.from_url(os.environ["BASELINE_REDIS_URL"])


class Turn(BaseModel):
    content: str


@app.post("/threads/{thread_id}/messages")
async def post_message(thread_id: str, turn: Turn) -> dict:
    raw = await store.get(f"thread:{thread_id}")
    history = messages_adapter.validate_json(raw) if raw else []
    first = len(history)
    history.append(UserText(text=turn.content))
    run, _ = start_run("run", thread_id, AGENT, TOOL_SET, first)
    await run_until_done(
        run, history, await PROVIDERS.for_agent(AGENT), TOOLS, DEFAULT_PRICES, RetryPolicy()
    )
    await store.set(f"thread:{thread_id}", messages_adapter.dump_json(history))
    return {"status": run.status, "reply": history[-1].text, "message_count": len(history)}


@app.get("/health")
async def health() -> dict:
    return {"status": "ok", "instance": "baseline"}
