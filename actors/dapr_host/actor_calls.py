"""daprd's calls of actor methods, served straight from the ASGI scope.

Every turn, and every read of a thread, is one such call. Through FastAPI (its router,
dependency solving and response classes, under dapr-ext-fastapi's route) a call took
about 90 us of the actor host's CPU before the method ran; from the scope, about 9 us
(measured in process, the app's middleware included). This serves
`PUT /actors/<type>/<id>/method/<method>` as that route does: the same
call of the SDK's actor runtime, the same answer and the same error bodies. It sits inside
the app's middleware, so daprd's token is checked first (threadhost/app.py); timers,
reminders, deactivation and /dapr/config stay with the extension's routes.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from dapr.actor import ActorRuntime
from dapr.clients.exceptions import ERROR_CODE_UNKNOWN, DaprInternalError

log = logging.getLogger(__name__)
# What the extension answers with (dapr.ext.fastapi.actor).
ANSWER_TYPE = b"application/json; utf-8"
ERROR_TYPE = b"application/json"
REENTRANCY_HEADER = b"dapr-reentrancy-id"


def method_call(scope: dict[str, Any]) -> tuple[str, str, str] | None:
    """(actor type, actor id, method) if the request calls an actor method."""
    if scope["type"] != "http" or scope["method"] != "PUT":
        return None
    parts = scope["path"].split("/")
    if (
        len(parts) == 6
        and parts[0] == ""
        and parts[1] == "actors"
        and parts[4] == "method"
        and parts[2]
        and parts[3]
        and parts[5]
    ):
        return parts[2], parts[3], parts[5]
    return None


class ActorMethodCalls:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        called = method_call(scope)
        if called is None:
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        reentrancy = dict(scope["headers"]).get(REENTRANCY_HEADER)
        try:
            answer = await ActorRuntime.dispatch(
                *called, body, reentrancy.decode("latin-1") if reentrancy else None
            )
            status, kind = 200, ANSWER_TYPE
        except DaprInternalError as exc:
            status, kind, answer = 500, ERROR_TYPE, _json(exc.as_json_safe_dict())
        except Exception as exc:  # noqa: BLE001 - answered as the extension answers it
            log.exception("%s.%s failed: %s", called[0], called[2], type(exc).__name__)
            status, kind = 500, ERROR_TYPE
            answer = _json({"message": repr(exc), "errorCode": ERROR_CODE_UNKNOWN})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", kind),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
