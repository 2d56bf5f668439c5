"""Webhooks: an agent's events as signed POSTs to a URL (the actor host delivers them, off
any thread's turn, and retries with backoff until one is taken).

Signatures follow the Standard Webhooks scheme: headers `webhook-id` (the event's id, the
same on every retry), `webhook-timestamp` (Unix seconds of this attempt) and
`webhook-signature`: `v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from pydantic import BaseModel, Field, HttpUrl


class WebhookDefinition(BaseModel):
    """Where an agent's events go as signed POSTs, and which URLs a thread of it may name."""

    # Every event of the agent's threads; None: only threads that name a URL get them.
    url: HttpUrl | None = None
    # The signing key: a secret of the host's Dapr secret store, and its key.
    secret: str = Field(min_length=1)
    key: str = "signing-key"
    # A thread may name its own URL (at creation) if it starts with one of these.
    allowed_urls: list[str] = Field(default_factory=list)

    def allows(self, url: str) -> bool:
        return any(url.startswith(prefix) for prefix in self.allowed_urls)


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{event_id}.{timestamp}.".encode() + body
    mac = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()
