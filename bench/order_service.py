"""The bench's microservice: the support agent's `query_order`, served over HTTP to be
called as a Dapr service tool (bench/tools.py). Same work as the Python tool."""

from __future__ import annotations

from fastapi import FastAPI

from actors.tools.support import ORDERS

app = FastAPI()


@app.post("/orders/lookup")
async def lookup(arguments: dict[str, str]) -> dict:
    return ORDERS[arguments["order_id"]].model_dump()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
