"""The client that actors and callers use to reach their daprd (actors, publishing): the
SDK's client interface over one pooled aiohttp session, instead of the SDK's new session
per request (aiohttp rather than httpx: per request it costs a fraction of the CPU)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp
import yarl
from dapr.actor.runtime.reentrancy_context import reentrancy_ctx
from dapr.clients.base import DaprActorClientBase
from dapr.clients.exceptions import DaprInternalError
from dapr.conf import settings as dapr_settings

from threadhost.common.ids import ACTOR_ID, InvalidId


def segment(value: str, what: str) -> str:
    """One path segment of a sidecar URL, quoted: a value that is empty, `.` or `..`
    (which daprd resolves, reaching its other APIs) is refused, and `/`, `?`, `#` and `%`
    are escaped, so no value can leave its segment."""
    if not isinstance(value, str) or value in ("", ".", "..") or "\x00" in value:
        raise InvalidId(f"a {what} cannot be empty, '.', '..' or hold NUL")  # never echoed
    return quote(value, safe="")


def _path(*parts: tuple[str, str]) -> str:
    return "".join("/" + segment(value, what) for value, what in parts)


def _method_path(path: str) -> str:
    """An app's method path, segment by segment (an agent file's `method`)."""
    return "/".join(segment(part, "method path segment") for part in path.strip("/").split("/"))


class PooledActorClient(DaprActorClientBase):
    def __init__(self, timeout_seconds: float = 60.0) -> None:
        self._timeout = timeout_seconds
        self._session: aiohttp.ClientSession | None = None
        self._base = ""

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the event loop that will use it.
        if self._session is None or self._session.closed:
            headers = {"content-type": "application/json"}
            if dapr_settings.DAPR_API_TOKEN:
                headers["dapr-api-token"] = dapr_settings.DAPR_API_TOKEN
            self._base = (
                f"http://{dapr_settings.DAPR_RUNTIME_HOST}:{dapr_settings.DAPR_HTTP_PORT}/v1.0"
            )
            self._session = aiohttp.ClientSession(
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                connector=aiohttp.TCPConnector(limit=200),
            )
        return self._session

    def invocation(self, app_id: str, path: str) -> tuple[str, dict[str, str]]:
        """The URL of an app's method through this sidecar, and the headers it wants."""
        headers = (
            {"dapr-api-token": dapr_settings.DAPR_API_TOKEN} if dapr_settings.DAPR_API_TOKEN else {}
        )
        return (
            f"http://{dapr_settings.DAPR_RUNTIME_HOST}:{dapr_settings.DAPR_HTTP_PORT}"
            f"/v1.0/invoke/{segment(app_id, 'app id')}/method/{_method_path(path)}",
            headers,
        )

    async def invoke(self, app_id: str, path: str) -> bytes:
        """A GET on another app (or this one) through service invocation."""
        return await self._send(
            "GET", f"/invoke/{segment(app_id, 'app id')}/method/{_method_path(path)}"
        )

    async def metadata(self) -> dict[str, Any]:
        """The sidecar's metadata: its app-id, components, subscriptions."""
        return json.loads(await self._send("GET", "/metadata"))

    async def secret(self, store: str, name: str) -> bytes:
        """A secret (a JSON object of its keys) from one of the sidecar's secret stores."""
        return await self._send(
            "GET", "/secrets" + _path((store, "secret store"), (name, "secret"))
        )

    async def publish(
        self, pubsub: str, topic: str, data: bytes, content_type: str = "application/json"
    ) -> None:
        """Publishes through the sidecar's pub/sub API (not an actor call); a CloudEvent
        of one's own goes as `application/cloudevents+json`, and daprd keeps its fields."""
        await self._send(
            "POST",
            "/publish" + _path((pubsub, "pub/sub"), (topic, "topic")),
            data,
            headers={"content-type": content_type},
        )

    async def schedule_job(self, name: str, job: dict[str, Any]) -> None:
        """Creates (or replaces) a job of this app: daprd calls `/job/<name>` when it fires."""
        await self._send("POST", "/jobs" + _path((name, "job")), json.dumps(job).encode())

    async def delete_job(self, name: str) -> None:
        await self._send("DELETE", "/jobs" + _path((name, "job")))

    async def _send(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        limit_seconds: float | None = None,
    ) -> bytes:
        session = self._client()
        # The trace context goes along through OpenTelemetry's aiohttp instrumentation.
        # Without a timeout of its own, the call has the session's.
        timeout = aiohttp.ClientTimeout(total=limit_seconds) if limit_seconds else session.timeout
        # Sent as built: every segment is quoted already, and nothing resolves `..` again.
        url = yarl.URL(self._base + path, encoded=True)
        async with session.request(
            method, url, data=data, headers=headers, timeout=timeout
        ) as response:
            body = await response.read()
            if 200 <= response.status < 300:
                return body
        raise DaprInternalError(
            f"daprd answered {response.status} to {method} {path}", raw_response_bytes=body
        )

    async def invoke_method(
        self,
        actor_type: str,
        actor_id: str,
        method: str,
        data: bytes | None = None,
        limit_seconds: float | None = None,
    ) -> bytes:
        """An actor method; `limit_seconds` overrides the client's timeout for this call."""
        reentrancy_id = reentrancy_ctx.get()
        headers = {"Dapr-Reentrancy-Id": reentrancy_id} if reentrancy_id else None
        return await self._send(
            "POST", _actor(actor_type, actor_id, (method, "method")), data, headers, limit_seconds
        )

    async def save_state_transactionally(self, actor_type: str, actor_id: str, data: bytes) -> None:
        await self._send("PUT", _actor(actor_type, actor_id) + "/state", data)

    async def delete_actor_state(self, actor_type: str, actor_id: str, keys: list[str]) -> None:
        """Removes keys of an actor in one transaction (none: no call)."""
        if keys:
            await self.save_state_transactionally(
                actor_type,
                actor_id,
                json.dumps(
                    [{"operation": "delete", "request": {"key": key}} for key in keys]
                ).encode(),
            )

    async def get_state(self, actor_type: str, actor_id: str, name: str) -> bytes:
        return await self._send("GET", _actor(actor_type, actor_id, (name, "state key"), "state"))

    async def register_reminder(
        self, actor_type: str, actor_id: str, name: str, data: bytes
    ) -> None:
        await self._send("PUT", _actor(actor_type, actor_id, (name, "reminder"), "reminders"), data)

    async def unregister_reminder(self, actor_type: str, actor_id: str, name: str) -> None:
        await self._send("DELETE", _actor(actor_type, actor_id, (name, "reminder"), "reminders"))

    async def register_timer(self, actor_type: str, actor_id: str, name: str, data: bytes) -> None:
        await self._send("PUT", _actor(actor_type, actor_id, (name, "timer"), "timers"), data)

    async def unregister_timer(self, actor_type: str, actor_id: str, name: str) -> None:
        await self._send("DELETE", _actor(actor_type, actor_id, (name, "timer"), "timers"))


def _actor(
    actor_type: str, actor_id: str, last: tuple[str, str] | None = None, kind: str = "method"
) -> str:
    """`/actors/<type>/<id>[/<kind>/<name>]`; the id is also held to the id alphabet
    (actor ids are thread ids, or owners in URL-safe base64, which may be longer)."""
    if not isinstance(actor_id, str) or ACTOR_ID.fullmatch(actor_id) is None:
        raise InvalidId("an actor id must be of A-Z, a-z, 0-9, _ and -")
    path = "/actors" + _path((actor_type, "actor type"), (actor_id, "actor id"))
    return path if last is None else f"{path}/{kind}" + _path(last)


_shared: PooledActorClient | None = None


def shared_actor_client(timeout_seconds: float = 60.0) -> Any:
    """One client per process, shared by the actor runtime and the gateway's proxies."""
    global _shared
    if _shared is None:
        _shared = PooledActorClient(timeout_seconds)
    return _shared
