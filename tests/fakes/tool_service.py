"""Another team's microservice that serves tools to threadhost agents through Dapr.

Run as `python -m tests.fakes.tool_service PORT`; it remembers every request it got
(`GET /seen`), so a test sees what a tool call carried.
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

app = FastAPI()
seen: list[dict] = []
HEADERS = (
    "threadhost-thread-id",
    "threadhost-run-id",
    "threadhost-tool-call-id",
    "idempotency-key",
    "dapr-caller-app-id",
    "content-type",
)


@app.middleware("http")
async def remember(request: Request, call_next):  # type: ignore[no-untyped-def]
    if request.url.path != "/seen":
        seen.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": {h: request.headers.get(h) for h in HEADERS},
                "body": (await request.body()).decode(),
            }
        )
    return await call_next(request)


@app.post("/tools/invoices/lookup")
async def lookup_invoice(request: Request) -> dict:
    invoice = (await request.json())["invoice_id"]
    return {"invoice_id": invoice, "amount": 42.5, "currency": "EUR", "status": "paid"}


@app.get("/tools/stock")
async def stock(sku: str) -> dict:
    return {"sku": sku, "in_stock": 3}


@app.post("/tools/broken")
async def broken() -> PlainTextResponse:
    return PlainTextResponse("the ledger database is down", status_code=500)


@app.post("/tools/reject")
async def reject() -> JSONResponse:
    return JSONResponse({"detail": "no such invoice"}, status_code=404)


@app.post("/tools/slow")
async def slow() -> dict:
    await asyncio.sleep(30)
    return {}


@app.post("/private/refund")
async def refund() -> dict:
    return {"refunded": True}


@app.get("/seen")
async def what_was_seen() -> list[dict]:
    return seen


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
