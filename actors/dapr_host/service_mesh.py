"""The engine's way to other apps and to secrets: the actor host's own sidecar.

A service tool's call and an MCP server reached by app-id go through Dapr service
invocation, so mTLS, access control, resiliency and tracing apply as to any Dapr call.
"""

from __future__ import annotations

import json

from actors.engine.service_tools import Endpoint
from threadhost.common.sidecar import shared_actor_client


class DaprMesh:
    def __init__(self, secret_store: str | None) -> None:
        self._secret_store = secret_store

    def endpoint(self, app_id: str, path: str) -> Endpoint:
        url, headers = shared_actor_client().invocation(app_id, path)
        return Endpoint(url=url, headers=headers)

    async def secret(self, name: str) -> dict[str, str]:
        if not self._secret_store:
            raise LookupError(f"secret {name!r}: no secret store is set (THREADHOST_SECRET_STORE)")
        values = json.loads(await shared_actor_client().secret(self._secret_store, name))
        return {str(key): str(value) for key, value in values.items()}
