"""Errors as application/problem+json, with a stable `type` per kind of problem.

    Problem (any error the API answers with)
    ├── invalid-request   400/422  malformed JSON, a field out of bounds, a bad thread id
    ├── unauthorized      401      no token, or a token refused (expired, wrong audience, …)
    ├── forbidden         403      a service app-id that is not allowed to call
    ├── thread-not-found  404      no thread (or run) with that id
    ├── thread-busy       409      the thread already has a run in progress
    ├── run-not-waiting   409      actions submitted to a run that waits for nothing
    ├── body-too-large    413      a request body over THREADHOST_MAX_BODY_BYTES
    ├── rate-limited      429      the caller's requests per minute or runs going on
    └── unavailable       502/503  the actor runtime could not be reached, or answered oddly

Lower-layer failures (the SDK's, daprd's) are mapped to these at the thread client;
nothing below the gateway's own messages, and no request body, reaches a response.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_BASE = "https://threadhost.dev/problems/"
MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    def __init__(self, status: int, kind: str, title: str, detail: str = "", **extra: Any):
        super().__init__(detail or title)
        self.status, self.kind, self.title, self.detail, self.extra = (
            status, kind, title, detail, extra)
        self.headers: dict[str, str] = {}

    def response(self) -> JSONResponse:
        body = {"type": PROBLEM_BASE + self.kind, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        body.update(self.extra)
        return JSONResponse(body, status_code=self.status, media_type=MEDIA_TYPE,
                            headers=self.headers)


def thread_not_found(thread_id: str) -> Problem:
    return Problem(404, "thread-not-found", "Thread not found", f"no thread with id {thread_id!r}")


def _validation_problem(exc: RequestValidationError) -> Problem:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return Problem(400, "invalid-request", "Malformed JSON",
                       "the request body is not valid JSON")
    # Only where and what: input values are never echoed back.
    fields = [{"location": [str(p) for p in e.get("loc", ())], "message": e.get("msg", "")}
              for e in errors]
    return Problem(422, "invalid-request", "Invalid request",
                   "the request does not match the API's schema", errors=fields)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_problem(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not-found" if exc.status_code == 404 else "http-error"
        return Problem(exc.status_code, kind, str(exc.detail)).response()
