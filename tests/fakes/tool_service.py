"""Another team's microservice that serves tools to threadhost agents through Dapr.

Run as `python -m tests.fakes.tool_service PORT [JWKS_URL [APP_ID]]`; it remembers every
request it got (`GET /seen`), so a test sees what a tool call carried. `POST /tools/invoices/mine`
answers the invoices of the end user the call is made for, verified as docs/tools.md
shows (its example runs here as written), and refuses a call without a valid assertion.
"""

from __future__ import annotations

import asyncio
import re
import sys

import jwt
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from threadhost.runtime import PROJECT_ROOT

app = FastAPI()
seen: list[dict] = []
# Set from the command line: where the gateway's keys are, and this app's own id (the
# audience of the assertions meant for it).
JWKS_URL: list[str] = []
APP_ID = ["billing"]
INVOICES = {"alice": ["INV-A1", "INV-A2"], "bob": ["INV-B1"]}


def _documented_verifier():  # type: ignore[no-untyped-def]
    """`verified_end_user`, from the example in docs/tools.md."""
    text = (PROJECT_ROOT / "docs" / "tools.md").read_text()
    block = re.search(r"<!-- example: verify-end-user -->\n```python\n(.*?)\n```", text, re.S)
    assert block, "docs/tools.md shows no verify-end-user example"
    scope: dict = {}
    exec(block.group(1), scope)  # noqa: S102 - the docs' own example, run as written
    return scope["verified_end_user"]


verified_end_user = _documented_verifier()
HEADERS = (
    "threadhost-thread-id",
    "threadhost-run-id",
    "threadhost-tool-call-id",
    "idempotency-key",
    "dapr-caller-app-id",
    "content-type",
    "threadhost-end-user",
    "threadhost-end-user-assertion",
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


@app.post("/tools/invoices/mine")
async def my_invoices(request: Request) -> JSONResponse:
    try:
        user = await verified_end_user(request.headers, APP_ID[0], JWKS_URL[0])
    except jwt.InvalidTokenError as exc:
        return JSONResponse({"detail": f"who is asking? {exc}"}, status_code=403)
    return JSONResponse({"end_user": user, "invoices": INVOICES.get(user, [])})


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
    JWKS_URL.extend(sys.argv[2:3])
    APP_ID[:] = sys.argv[3:4] or APP_ID
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
