"""A small typed async client for threadhost, for other services: plain HTTP to a gateway,
or Dapr service invocation through the caller's own sidecar.

    async with ThreadhostClient("http://localhost:8000", token=jwt) as th:
        thread = await th.create_thread(agent="support")
        turn = await th.say(thread.id, "Where is my order 1001?")
        async for event in th.stream(thread.id, "And order 1002?"):
            print(event.event, event.data)
        if turn.run.status == "requires_action":          # a pause: answer what it waits for
            action = turn.run.required_action[0]
            turn = await th.resume(thread.id, turn.run.run_id,
                                   [Approval(call_id=action.call_id, approved=True)])

    ThreadhostClient.via_dapr(app_id="gateway")   # through http://127.0.0.1:$DAPR_HTTP_PORT

A service acts for its end users, and names threads by its own keys:

    async with ThreadhostClient.via_dapr(app_id="gateway.threadhost") as th:
        alice = th.for_end_user("customer-4711")       # shares th's connections
        thread = await alice.create_thread(agent="support", key="order-1001")
        turn = await alice.say("key:order-1001", "Where is it?")   # a key for an id
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from actors.engine.pauses import Answer, Approval, Submission, ToolOutput
from actors.engine.tool_set import ClientTool
from actors.threads.contract import RunView, ThreadView
from gateway.schemas import HistoryView, RunsView, TurnView

__all__ = [
    "Answer",
    "Approval",
    "ClientTool",
    "ServerEvent",
    "Submission",
    "ThreadhostClient",
    "ThreadhostError",
    "ToolOutput",
]
OnActive = Literal["enqueue", "reject", "interrupt"]
# The header a service names the end user it acts for with (gateway/auth.py).
END_USER_HEADER = "threadhost-end-user"


class ThreadhostError(Exception):
    """An answer other than success, with the problem document the API sent."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")
        self.status, self.problem = status, problem


@dataclass(frozen=True)
class ServerEvent:
    """One server-sent event: `id` is the run sequence number (None for token deltas),
    `event_id` the id as sent (a thread's stream: `<run_id>.<seq>`)."""

    event: str
    data: dict[str, Any]
    id: int | None = None
    event_id: str | None = None


class EventStreamParser:
    """Server-sent events from lines, as the HTML standard's event stream parser reads
    them: `field:value` with one optional space after the colon, a line without a colon
    is a field with an empty value, `data` lines join with newlines, comments and
    unknown fields are ignored, `retry` sets the reconnection delay, and an empty line
    ends the event (one without data is dropped). The last event id is kept for a
    reconnection (`events(..., after=parser.last_event_id)`)."""

    def __init__(self) -> None:
        self.last_event_id: str = ""
        self.retry_ms: int | None = None
        self._reset()

    def _reset(self) -> None:
        self._event = ""
        self._id: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> ServerEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerEvent | None:
        event, data, id_ = self._event or "message", "\n".join(self._data), self._id
        had_data = bool(self._data)
        self._reset()
        if not had_data:
            return None
        return ServerEvent(
            event=event,
            data=json.loads(data) if data else {},
            id=int(id_) if id_ is not None and id_.lstrip("-").isdigit() else None,
            event_id=id_,
        )


class _Requests:
    """What every call of the client shares: its connections, the end user it acts for,
    and how answers, refusals and event streams are read."""

    _http: httpx.AsyncClient
    _end_user: str | None

    def _headers(self, headers: dict[str, str] | None = None) -> dict[str, str]:
        named = {END_USER_HEADER: self._end_user} if self._end_user is not None else {}
        return {**named, **(headers or {})}

    def _build(self, method: str, path: str, **kwargs: Any) -> httpx.Request:
        kwargs["headers"] = self._headers(kwargs.get("headers"))
        return self._http.build_request(method, path, **kwargs)

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        kwargs["headers"] = self._headers(kwargs.get("headers"))
        response = await self._http.request(method, path, **kwargs)
        if response.is_error:
            raise ThreadhostError(response.status_code, _problem(response))
        return response.json() if response.content else None

    async def _events(self, request: httpx.Request) -> AsyncIterator[ServerEvent]:
        response = await self._http.send(request, stream=True)
        try:
            if response.is_error:
                await response.aread()
                raise ThreadhostError(response.status_code, _problem(response))
            parser = EventStreamParser()
            async for line in response.aiter_lines():
                if (event := parser.feed(line)) is not None:
                    yield event
        finally:
            await response.aclose()


class ThreadhostClient(_Requests):
    """Every method that takes a `thread_id` takes `key:<key>` too: the caller's thread of
    that key (a message to a key that names no thread yet opens it)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 120,
        end_user: str | None = None,
    ) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout
        )
        self._end_user, self._owns_http = end_user, True

    @classmethod
    def via_dapr(
        cls,
        app_id: str = "gateway",
        dapr_http_port: int | None = None,
        token: str | None = None,
        end_user: str | None = None,
    ) -> ThreadhostClient:
        port = dapr_http_port or int(os.environ.get("DAPR_HTTP_PORT", "3500"))
        return cls(f"http://127.0.0.1:{port}/v1.0/invoke/{app_id}/method", token, end_user=end_user)

    def for_end_user(self, end_user: str) -> ThreadhostClient:
        """This client acting for one of the calling service's end users (a service's
        only: a person's token cannot name one). It shares this client's connections:
        close this one, not it."""
        view = copy.copy(self)
        view._end_user, view._owns_http = end_user, False
        return view

    async def __aenter__(self) -> ThreadhostClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def create_thread(
        self,
        agent: str | None = None,
        metadata: dict[str, str] | None = None,
        key: str | None = None,
    ) -> ThreadView:
        """A new thread; with a `key`, the caller's thread of that key (made once, then
        found: any number of replicas may ask at once)."""
        body = {"agent": agent, "metadata": metadata or {}, **({"key": key} if key else {})}
        return ThreadView.model_validate(await self._json("POST", "/v1/threads", json=body))

    async def thread(self, thread_id: str) -> ThreadView:
        return ThreadView.model_validate(await self._json("GET", f"/v1/threads/{thread_id}"))

    async def delete_thread(self, thread_id: str) -> None:
        await self._json("DELETE", f"/v1/threads/{thread_id}")

    @staticmethod
    def _turn(
        content: str,
        mode: str,
        model: str | None,
        on_active: str,
        client_tools: list[ClientTool],
        disabled_tools: list[str],
    ) -> dict:
        return {
            "content": content,
            "mode": mode,
            "model": model,
            "on_active": on_active,
            "client_tools": [t.model_dump(mode="json") for t in client_tools],
            "disabled_tools": disabled_tools,
        }

    @staticmethod
    def _ended_or_running(answer: dict) -> TurnView | RunView:
        if "url" in answer:
            return RunView.model_validate(answer["run"])
        return TurnView.model_validate(answer)

    async def say(
        self,
        thread_id: str,
        content: str,
        *,
        model: str | None = None,
        on_active: OnActive = "enqueue",
        idempotency_key: str | None = None,
        client_tools: Sequence[ClientTool] = (),
        disabled_tools: Sequence[str] = (),
    ) -> TurnView | RunView:
        """A turn that waits for its run to end or pause (`requires_action`); a RunView
        if the run outlasted the wait."""
        headers = {"idempotency-key": idempotency_key} if idempotency_key else {}
        body = self._turn(
            content, "wait", model, on_active, list(client_tools), list(disabled_tools)
        )
        return self._ended_or_running(
            await self._json(
                "POST", f"/v1/threads/{thread_id}/messages", headers=headers, json=body
            )
        )

    async def start(
        self,
        thread_id: str,
        content: str,
        *,
        model: str | None = None,
        on_active: OnActive = "enqueue",
        client_tools: Sequence[ClientTool] = (),
        disabled_tools: Sequence[str] = (),
    ) -> RunView:
        """A turn in the background: the run, at once."""
        body = self._turn(
            content, "background", model, on_active, list(client_tools), list(disabled_tools)
        )
        answer = await self._json("POST", f"/v1/threads/{thread_id}/messages", json=body)
        return RunView.model_validate(answer["run"])

    async def stream(
        self,
        thread_id: str,
        content: str,
        *,
        model: str | None = None,
        on_active: OnActive = "enqueue",
        client_tools: Sequence[ClientTool] = (),
        disabled_tools: Sequence[str] = (),
    ) -> AsyncIterator[ServerEvent]:
        """A turn whose events arrive as they happen, until the run ends or pauses."""
        body = self._turn(
            content, "stream", model, on_active, list(client_tools), list(disabled_tools)
        )
        request = self._build("POST", f"/v1/threads/{thread_id}/messages", json=body)
        async for event in self._events(request):
            yield event

    def _resume_body(self, actions: list[Submission], mode: str) -> dict:
        return {"actions": [a.model_dump(mode="json") for a in actions], "mode": mode}

    async def resume(
        self, thread_id: str, run_id: str, actions: list[Submission]
    ) -> TurnView | RunView:
        """Answers what a waiting run waits for (ToolOutput, Approval, Answer: every
        pending call once) and waits for it to end or pause again."""
        return self._ended_or_running(
            await self._json(
                "POST",
                f"/v1/threads/{thread_id}/runs/{run_id}/resume",
                json=self._resume_body(actions, "wait"),
            )
        )

    async def resume_stream(
        self, thread_id: str, run_id: str, actions: list[Submission]
    ) -> AsyncIterator[ServerEvent]:
        """As `resume`, with the run's events from the answers on, as they happen."""
        request = self._build(
            "POST",
            f"/v1/threads/{thread_id}/runs/{run_id}/resume",
            json=self._resume_body(actions, "stream"),
        )
        async for event in self._events(request):
            yield event

    async def events(
        self, thread_id: str, run_id: str, after: int = -1
    ) -> AsyncIterator[ServerEvent]:
        """A run's events after `after` (resuming a stream), then live to its end."""
        request = self._build(
            "GET",
            f"/v1/threads/{thread_id}/runs/{run_id}/events",
            headers={"accept": "text/event-stream", "last-event-id": str(after)},
        )
        async for event in self._events(request):
            yield event

    async def fork(
        self, thread_id: str, message_index: int, metadata: dict[str, str] | None = None
    ) -> ThreadView:
        """A new thread whose history is this one's messages before `message_index`."""
        body: dict[str, Any] = {"message_index": message_index}
        if metadata is not None:
            body["metadata"] = metadata
        return ThreadView.model_validate(
            await self._json("POST", f"/v1/threads/{thread_id}/fork", json=body)
        )

    async def thread_events(
        self, thread_id: str, after: str | None = None
    ) -> AsyncIterator[ServerEvent]:
        """Every run of the thread as it happens, until the thread is deleted (or the
        caller stops reading); `after` an event's `event_id` resumes after it ("" from
        the thread's first run; None from the run going on, or from now)."""
        headers = {"accept": "text/event-stream"}
        if after is not None:
            headers["last-event-id"] = after
        request = self._build("GET", f"/v1/threads/{thread_id}/events", headers=headers)
        async for event in self._events(request):
            yield event

    async def run(self, thread_id: str, run_id: str) -> RunView:
        return RunView.model_validate(
            await self._json("GET", f"/v1/threads/{thread_id}/runs/{run_id}")
        )

    async def runs(self, thread_id: str, offset: int = 0, limit: int = 20) -> RunsView:
        return RunsView.model_validate(
            await self._json(
                "GET", f"/v1/threads/{thread_id}/runs", params={"offset": offset, "limit": limit}
            )
        )

    async def cancel(self, thread_id: str, run_id: str) -> RunView:
        return RunView.model_validate(
            await self._json("POST", f"/v1/threads/{thread_id}/runs/{run_id}/cancel")
        )

    async def history(
        self, thread_id: str, offset: int = 0, limit: int | None = None
    ) -> HistoryView:
        params = {"offset": offset, **({"limit": limit} if limit else {})}
        return HistoryView.model_validate(
            await self._json("GET", f"/v1/threads/{thread_id}/messages", params=params)
        )


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        return response.json()
    except ValueError:
        return {"title": response.reason_phrase}
