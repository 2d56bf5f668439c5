"""An MCP server built with the official `mcp` SDK: a documentation team's tools.

Run as `python -m tests.fakes.mcp_docs stdio`, or `... http PORT [TOKEN]` (streamable
HTTP at /mcp, with a /health route; with a token, /mcp answers only `Bearer TOKEN`).
"""

from __future__ import annotations

import sys

from mcp.server.mcpserver import Context, MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse

docs = MCPServer("docs", version="1.4.0")
PAGES = {
    "returns": "Items can be returned within 30 days.",
    "shipping": "Orders ship within 2 days.",
}


@docs.tool()
def search_docs(query: str) -> str:
    """Finds the documentation pages about a topic."""
    hits = [f"{name}: {text}" for name, text in PAGES.items() if query.lower() in name]
    return "\n".join(hits) or f"nothing about {query}"


@docs.tool(name="pages.delete")
def delete_page(page: str) -> str:
    """Deletes a documentation page."""
    PAGES.pop(page, None)
    return f"deleted {page}"


@docs.tool()
def who_calls(ctx: Context) -> str:
    """Says which thread, run and call asked (from the request's _meta)."""
    meta = ctx.request_context.meta or {}
    return " ".join(f"{k}={v}" for k, v in sorted(meta.items()) if k.startswith("threadhost/"))


@docs.tool()
def internal_stats() -> str:
    """Counts the pages (an internal tool that agents filter out)."""
    return str(len(PAGES))


@docs.custom_route("/health", methods=["GET"])
async def health(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        docs.run("stdio")
    else:
        import uvicorn

        app = docs.streamable_http_app()
        token = sys.argv[3] if len(sys.argv) > 3 else None

        async def guarded(scope, receive, send):  # type: ignore[no-untyped-def]
            if token and scope["type"] == "http" and scope["path"] == "/mcp":
                headers = dict(scope["headers"])
                if headers.get(b"authorization") != f"Bearer {token}".encode():
                    await PlainTextResponse("no entry", status_code=401)(scope, receive, send)
                    return
            await app(scope, receive, send)

        uvicorn.run(guarded, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
