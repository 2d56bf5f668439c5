"""Errors as application/problem+json, with a stable `type` per kind of problem, and one
class per kind the gateway raises (its status, kind and title named there, once).

    Problem (any error the API answers with)
    ├── InvalidRequest       invalid-request      400/422  malformed JSON or UTF-8, a field
    │                                                      out of bounds or not text (a lone
    │                                                      surrogate, NUL), a bad thread id
    ├── Unauthorized         unauthorized         401      no token, or a token refused
    ├── Forbidden            forbidden            403      an app-id that may not call;
    │                                                      daprd's routes
    ├── (routing)            not-found            404      no such route
    ├── (contract refusals)  thread-not-found     404      no such thread (or not the caller's)
    │                        run-not-found        404      the thread has no run with that id
    │                        thread-busy          409      a run is in progress
    │                        run-not-waiting      409      actions for a run that waits for none
    │                        followup-not-found,  404/409  (actors/threads/contract.py names
    │                        too-many-followups            each, and its status and title)
    ├── ModelNotFound        model-not-found      404      an OpenAI door's model names no agent
    ├── ResponseNotFound     response-not-found   404      previous_response_id unknown
    ├── (routing)            method-not-allowed   405      a method the route does not take
    ├── BodyTooLarge         body-too-large       413      over THREADHOST_MAX_BODY_BYTES
    ├── RateLimited          rate-limited         429      requests per minute, runs, streams
    │   └── QuotaExceeded    quota-exceeded       429      tokens or dollars of a day, a month
    ├── InternalError        internal-error       500      a defect of threadhost's: nothing of
    │                                                      the request is shown
    ├── RunFailed            run-failed           500      an OpenAI door's run failed
    ├── RunStillGoing        run-still-going      504      an OpenAI door's wait ended first
    └── Unavailable          unavailable          502/503  the actor runtime could not be
        └── Unreachable                                    reached, or answered oddly

Lower-layer failures (the SDK's, daprd's) are mapped to these at the thread client;
nothing below the gateway's own messages, and no request body, reaches a response. The
OpenAI doors answer the same problems in OpenAI's error shape (code: the kind, with `_`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from actors.engine.text import printable
from actors.threads.contract import Invalid
from threadhost.common.ids import InvalidId

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://threadhost.dev/problems/"
MEDIA_TYPE = "application/problem+json"
# Routes of the OpenAI door answer errors in OpenAI's shape, which its clients read.
OPENAI_ROUTES = ("/v1/chat/completions", "/v1/models", "/v1/responses")


class Problem(Exception):
    def __init__(self, status: int, kind: str, title: str, detail: str = "", **extra: Any):
        super().__init__(detail or title)
        self.status, self.kind, self.title, self.detail, self.extra = (
            status,
            kind,
            title,
            detail,
            extra,
        )
        self.headers: dict[str, str] = {}

    def response(self) -> JSONResponse:
        body = {"type": PROBLEM_BASE + self.kind, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        body.update(self.extra)
        return JSONResponse(
            body, status_code=self.status, media_type=MEDIA_TYPE, headers=self.headers
        )


class _Kind(Problem):
    """A problem of one kind: its status, kind and title are the class's, named once."""

    STATUS: int
    KIND: str
    TITLE: str

    def __init__(
        self, detail: str = "", *, title: str | None = None, status: int | None = None, **extra: Any
    ) -> None:
        super().__init__(status or self.STATUS, self.KIND, title or self.TITLE, detail, **extra)


class InvalidRequest(_Kind):
    # The kind the contract names for an actor's refusal of a request (actors/threads).
    STATUS, KIND, TITLE = Invalid.http_status, Invalid.problem_type, Invalid.title


class Unauthorized(_Kind):
    STATUS, KIND, TITLE = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(_Kind):
    STATUS, KIND, TITLE = 403, "forbidden", "Forbidden"


class ModelNotFound(_Kind):
    """An OpenAI door's `model` that names no agent."""

    STATUS, KIND, TITLE = 404, "model-not-found", "Unknown model"


class ResponseNotFound(_Kind):
    STATUS, KIND, TITLE = 404, "response-not-found", "Unknown response"


class BodyTooLarge(_Kind):
    STATUS, KIND, TITLE = 413, "body-too-large", "Request body too large"


class RateLimited(_Kind):
    STATUS, KIND, TITLE = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str = "", *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
        self.headers = {"Retry-After": str(retry_after)}


class QuotaExceeded(RateLimited):
    """A quota of the caller's (actors/engine/quotas.py) is used until its period ends."""

    KIND, TITLE = "quota-exceeded", "Quota used up"


class InternalError(_Kind):
    STATUS, KIND, TITLE = 500, "internal-error", "Internal error"


class RunFailed(_Kind):
    """An OpenAI door's turn whose run failed: the door has no other way to say so."""

    STATUS, KIND, TITLE = 500, "run-failed", "The run failed"


class RunStillGoing(_Kind):
    STATUS, KIND, TITLE = 504, "run-still-going", "The run goes on"


class Unavailable(_Kind):
    STATUS, KIND, TITLE = 503, "unavailable", "Thread service unavailable"


class FieldProblem(BaseModel):
    # Where in the request (e.g. ["body", "metadata", "note"]) and what is wrong with it.
    location: list[str]
    message: str


class ProblemView(BaseModel):
    """The body of every error answer (RFC 9457), as application/problem+json."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": PROBLEM_BASE + Invalid.problem_type,
                    "title": "Invalid request",
                    "status": 422,
                    "detail": "the request does not match the API's schema",
                    "errors": [
                        {
                            "location": ["body", "content"],
                            "message": "a lone UTF-16 surrogate at character 4 is not text",
                        }
                    ],
                }
            ]
        },
    )
    type: str
    title: str
    status: int
    detail: str | None = None
    # invalid-request (422): each field that is wrong; never the value sent.
    errors: list[FieldProblem] | None = None
    # thread-busy: the run in progress; rate-limited: seconds to wait.
    run_id: str | None = None
    # unavailable, on a turn: the turn may have been taken; sent again with this
    # Idempotency-Key, it is taken at most once.
    idempotency_key: str | None = None
    retry_after: int | None = None


_MEANING = {
    400: "the request could not be read (malformed JSON or UTF-8)",
    401: "no token, or the token was refused",
    403: "the caller may not call this",
    404: "no such thread or run (or not the caller's)",
    409: "the thread is busy with a run, or the run is not waiting",
    413: "the request body is over the limit",
    422: "a field is missing, out of bounds or not text",
    429: "too many requests or runs, or a quota used up: wait Retry-After seconds",
    500: "a defect of threadhost's; nothing was written",
    503: "the thread service could not be reached; retry shortly (a turn: with the "
    "Idempotency-Key the answer names, so it is taken at most once)",
    504: "the run goes on past the wait: read it at the URL the error names",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the problems a route may answer with (threadhost.app
    publishes them as application/problem+json, the media type they are sent with)."""
    return {status: {"description": _MEANING[status], "model": ProblemView} for status in statuses}


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    """The body of an error answer of the OpenAI door, in OpenAI's shape."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "message": "no agent named 'nobody': GET /v1/models lists them",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "model_not_found",
                    }
                }
            ]
        }
    )
    error: OpenAIErrorDetail


def as_problem_documents(schema: dict[str, Any]) -> None:
    """In an OpenAPI document: every error answer is a ProblemView, sent as
    application/problem+json (FastAPI writes application/json for any model); those of
    the OpenAI door are OpenAI's error objects, as application/json."""
    ref = {"$ref": "#/components/schemas/ProblemView"}
    openai_ref = {"$ref": "#/components/schemas/OpenAIError"}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for path, item in schema.get("paths", {}).items():
        door = path.startswith(OPENAI_ROUTES)
        for operation in item.values():
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45":
                    response["content"] = (
                        {"application/json": {"schema": openai_ref}}
                        if door
                        else {MEDIA_TYPE: {"schema": ref}}
                    )
                    if door:
                        response["description"] = response.get("description", "")
    definitions = OpenAIError.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(definitions.pop("$defs", {}))
    components["OpenAIError"] = definitions
    for unused in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(unused, None)


def _validation_problem(exc: RequestValidationError) -> Problem:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return InvalidRequest(
            "the request body is not valid JSON", title="Malformed JSON", status=400
        )
    # Only where and what: input values are never echoed back.
    fields = [
        {
            "location": [printable(p) for p in e.get("loc", ())],
            "message": printable(e.get("msg", "")),
        }
        for e in errors
    ]
    return InvalidRequest("the request does not match the API's schema", errors=fields)


def _allowed(request: Request) -> list[str]:
    """Every method some route takes at the request's path (RFC 9110's Allow; Starlette
    names only the first route that matches the path). Asked of the router method by
    method, so routers included in others answer too."""
    return [
        method
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]


_HTTP_KINDS = {
    400: (Invalid.problem_type, "Malformed request body"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
}


_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def _openai_error(problem: Problem) -> JSONResponse:
    kind = "invalid_request_error" if problem.status < 500 else "server_error"
    errors = problem.extra.get("errors")
    message = problem.detail or problem.title
    if errors:  # where, and what is wrong there: the deepest (of a union's branches, the
        # one that got furthest into the request)
        first = max(errors, key=lambda e: len(e["location"]))
        message = f"{'.'.join(map(str, first['location'][1:]))}: {first['message']}"
    body = {
        "error": {
            "message": message,
            "type": _OPENAI_TYPES.get(problem.status, kind),
            "param": None,
            "code": problem.kind.replace("-", "_"),
            **{k: v for k, v in problem.extra.items() if k != "errors"},
        }
    }
    return JSONResponse(body, status_code=problem.status, headers=problem.headers)


def answer_at(path: str, problem: Problem) -> JSONResponse:
    """The problem as the route at `path` answers errors: OpenAI's shape on its door."""
    return _openai_error(problem) if path.startswith(OPENAI_ROUTES) else problem.response()


def _answer(request: Request, problem: Problem) -> JSONResponse:
    return answer_at(request.url.path, problem)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return _answer(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _answer(request, _validation_problem(exc))

    @app.exception_handler(InvalidId)
    async def _bad_id(request: Request, exc: InvalidId) -> JSONResponse:
        # An id that got past its door's check: refused where the sidecar URL is made.
        return _answer(request, InvalidRequest(str(exc), title="Invalid id"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own errors: a body it could not parse (invalid UTF-8, JSON nested too
        # deep), no route, a method the route does not take. Their headers stay.
        kind, title = _HTTP_KINDS.get(exc.status_code, ("http-error", str(exc.detail)))
        detail = "the request body is not valid JSON in UTF-8" if exc.status_code == 400 else ""
        problem = Problem(exc.status_code, kind, title, detail)
        problem.headers = dict(exc.headers or {})
        if exc.status_code == 405:
            problem.headers["Allow"] = ", ".join(_allowed(request))
        return _answer(request, problem)

    app.add_middleware(UnexpectedErrors)


class UnexpectedErrors:
    """A defect answers 500 problem+json and the connection stays usable. (Starlette's
    own last resort re-raises after answering, and uvicorn then drops the connection
    without saying so, failing the client's next request on it too.)"""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:  # a stream already under way can only be cut
                raise
            log.error("%s %s failed: %s", scope["method"], scope["path"], type(exc).__name__)
            await answer_at(
                scope["path"],
                InternalError("the server failed on this request; nothing of it is shown here"),
            )(scope, receive, send)
