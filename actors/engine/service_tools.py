"""Calls a method of another service for the model: one HTTP request through the mesh.

What the service gets (docs/tools.md): the model's arguments (a JSON body for POST, PUT
and PATCH; query parameters for GET and DELETE), and headers naming the thread, the run and
the tool call, with an `Idempotency-Key` that is the same if the step is taken again after
a crash, so a service can make a repeated call harmless. Whatever goes wrong (a 4xx, a
5xx, a timeout, an app that cannot be reached or that access control refuses) goes back to
the model as the tool's error, never out of the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from actors.engine.assertions import AssertionSigner
from actors.engine.messages import ToolCall, ToolResult
from actors.engine.run import ActingFor
from actors.engine.tool_sources import ServiceRoute

# How much of a failed call's answer the model sees.
ERROR_EXCERPT_CHARS = 1000


@dataclass(frozen=True)
class ToolCallContext:
    """Who makes a call from outside the host's view: the thread, the run, the call, and
    the end user the run acts for (with the host's signed assertion of it, once signed)."""

    thread_id: str
    run_id: str
    call_id: str
    acting_for: ActingFor | None = None
    assertion: str | None = None

    @property
    def idempotency_key(self) -> str:
        # Run ids are unique and a call id is stored with the step that made it, so a
        # repeated tool step sends the same key.
        return f"{self.run_id}.{self.call_id}"

    def signed(self, signer: AssertionSigner | None, audience: str) -> ToolCallContext:
        """The context with an assertion of its end user for `audience` (none without an
        end user or a key)."""
        if signer is None or self.acting_for is None:
            return self
        assertion = signer.sign(
            self.acting_for,
            audience,
            thread_id=self.thread_id,
            run_id=self.run_id,
            call_id=self.call_id,
        )
        return replace(self, assertion=assertion)

    def _end_user(self) -> dict[str, str]:
        if self.acting_for is None:
            return {}
        found = {"end-user": self.acting_for.user}
        return found if self.assertion is None else {**found, "end-user-assertion": self.assertion}

    def headers(self) -> dict[str, str]:
        return {
            "threadhost-thread-id": self.thread_id,
            "threadhost-run-id": self.run_id,
            "threadhost-tool-call-id": self.call_id,
            "idempotency-key": self.idempotency_key,
            **{f"threadhost-{name}": value for name, value in self._end_user().items()},
        }

    def mcp_meta(self) -> dict[str, str]:
        """The same, as an MCP request's `_meta` (headers belong to a connection)."""
        return {
            "threadhost/thread-id": self.thread_id,
            "threadhost/run-id": self.run_id,
            "threadhost/tool-call-id": self.call_id,
            "threadhost/idempotency-key": self.idempotency_key,
            **{f"threadhost/{name}": value for name, value in self._end_user().items()},
        }


@dataclass(frozen=True)
class Endpoint:
    """Where a request to another app goes, with the headers the way there wants."""

    url: str
    headers: dict[str, str]


def tool_error(call: ToolCall, text: str) -> ToolResult:
    return ToolResult(call_id=call.call_id, name=call.name, content=text, is_error=True)


def json_arguments(call: ToolCall) -> dict[str, Any] | ToolResult:
    """The call's arguments as a JSON object, or the error result that says why not."""
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError as exc:
        return tool_error(call, f"invalid arguments for {call.name}: not JSON ({exc})")
    if not isinstance(arguments, dict):
        return tool_error(call, f"invalid arguments for {call.name}: not a JSON object")
    return arguments


async def call_service(
    http: httpx.AsyncClient,
    endpoint: Endpoint,
    route: ServiceRoute,
    schema: dict[str, Any],
    call: ToolCall,
    context: ToolCallContext,
    time_limit: float,
) -> ToolResult:
    def error(text: str) -> ToolResult:
        return tool_error(call, text)

    arguments = json_arguments(call)
    if isinstance(arguments, ToolResult):
        return arguments
    # As for a function tool, arguments that do not fit the schema never reach the service.
    problems = [
        f"{'.'.join(map(str, e.absolute_path)) or 'arguments'}: {e.message}"
        for e in Draft202012Validator(schema).iter_errors(arguments)
    ]
    if problems:
        return error(f"invalid arguments for {call.name}: {'; '.join(problems)}")
    where = f"{route.verb} {route.method} on {route.app_id}"
    headers = {**endpoint.headers, **context.headers()}
    params: dict[str, str] | None = None
    content: bytes | None = None
    if route.verb in ("GET", "DELETE"):
        params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in arguments.items()}
    else:
        content, headers["content-type"] = json.dumps(arguments).encode(), "application/json"
    try:
        response = await http.request(
            route.verb,
            endpoint.url,
            params=params,
            content=content,
            headers=headers,
            timeout=time_limit,
        )
    except httpx.TimeoutException:
        return error(f"{where} did not answer within {time_limit:g} s")
    except httpx.HTTPError as exc:
        return error(f"{where} could not be reached: {type(exc).__name__}: {exc}")
    if response.is_success:
        return ToolResult(call_id=call.call_id, name=call.name, content=response.text)
    return error(
        f"{where} answered {response.status_code} {response.reason_phrase}: {_reason(response)}"
    )


def _reason(response: httpx.Response) -> str:
    """Dapr's own refusals (access control, an app it cannot find) are JSON with an
    errorCode and a message; a service's own answer is quoted as it came."""
    text = response.text
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "errorCode" in body:
        text = f"{body.get('errorCode')}: {body.get('message', '')}"
    return text[:ERROR_EXCERPT_CHARS] or "(no body)"
