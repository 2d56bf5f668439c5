"""The baseline a user would pick instead of threadhost (issue 31): FastAPI (one uvicorn
worker) + Redis + the OpenAI Agents SDK.

Each turn GETs the thread's whole history list from one Redis key, runs `Runner.run` with
a scripted `Model` (the bench agent's turn: one call of `query_order`, then the answer,
with no latency), and SETs the list back with a 24 h expiry. The tool is the same
function threadhost's bench agent calls. Tracing is off: nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as redis
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from fastapi import FastAPI
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)
from pydantic import BaseModel

from actors.tools.support import ORDERS
from agents import Agent, Runner, function_tool, set_tracing_disabled

set_tracing_disabled(True)
ANSWER = "Order 1001 has shipped."
EXPIRY_SECONDS = 24 * 3600


@function_tool
def query_order(order_id: str) -> str:
    """Looks an order up by its id: status, items and tracking number."""
    if order_id not in ORDERS:
        raise LookupError(f"no order {order_id}")
    return ORDERS[order_id].model_dump_json()


class ScriptedModel(Model):
    """The bench agent's script: a call of query_order, then, once its result is in, the
    answer."""

    async def get_response(
        self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any
    ) -> ModelResponse:  # noqa: A002
        items = input if isinstance(input, list) else [{"role": "user", "content": input}]
        last = items[-1]
        if isinstance(last, dict) and last.get("type") == "function_call_output":
            output: Any = ResponseOutputMessage(
                id=f"msg_{len(items)}",
                type="message",
                role="assistant",
                status="completed",
                content=[ResponseOutputText(type="output_text", text=ANSWER, annotations=[])],
            )
        else:
            output = ResponseFunctionToolCall(
                type="function_call",
                call_id=f"call_{len(items)}",
                name="query_order",
                arguments=json.dumps({"order_id": "1001"}),
            )
        words = sum(len(str(item).split()) for item in items)
        return ModelResponse(
            output=[output],
            usage=Usage(requests=1, input_tokens=words, output_tokens=4, total_tokens=words + 4),
            response_id=None,
        )

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the bench's turns are not streamed")


AGENT = Agent(name="bench", instructions="", tools=[query_order], model=ScriptedModel())
app = FastAPI()
store = redis.Redis.from_url(os.environ["BASELINE_REDIS_URL"])


class Turn(BaseModel):
    content: str


@app.post("/threads/{thread_id}/messages")
async def post_message(thread_id: str, turn: Turn) -> dict:
    key = f"thread:{thread_id}"
    raw = await store.get(key)
    history = json.loads(raw) if raw else []
    result = await Runner.run(AGENT, [*history, {"role": "user", "content": turn.content}])
    items = result.to_input_list()
    await store.set(key, json.dumps(items), ex=EXPIRY_SECONDS)
    return {"status": "completed", "reply": result.final_output, "message_count": len(items)}


@app.get("/health")
async def health() -> dict:
    return {"status": "ok", "instance": "agent-sdk"}
