"""Webhooks: an agent's events as signed POSTs to a URL (the actor host delivers them, off
any thread's turn, and retries with backoff until one is taken).

Signatures follow the Standard Webhooks scheme: headers `webhook-id` (the event's id, the
same on every retry), `webhook-timestamp` (Unix seconds of this attempt) and
`webhook-signature`: `v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`. The
secret is kept in the scheme's own form, `whsec_<base64 of the key>`, so a receiver hands
the same string to any Standard Webhooks library; a secret without that prefix is the
key's raw bytes (a receiver then passes `whsec_` + base64 of it).

A thread may name its own URL only where its agent allows: the URL and each allowed one
are parsed and compared part by part (scheme, host and port exactly, no user info, the
path by whole segments), never as strings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, HttpUrl, field_validator

_DEFAULT_PORTS = {"http": 80, "https": 443}


class UnusableUrl(ValueError):
    """A webhook URL that cannot be delivered to: the message says why."""


@dataclass(frozen=True)
class WebhookTarget:
    """A webhook URL taken apart: what the allow-list compares."""

    scheme: str
    host: str
    port: int
    segments: tuple[str, ...]

    @classmethod
    def of(cls, url: str) -> WebhookTarget:
        if any(ord(c) < 0x21 or c in '\\"<>^`{|}\x7f' for c in url):
            raise UnusableUrl("a URL holds no spaces, control characters or backslashes")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UnusableUrl(f"not a URL: {exc}") from None
        if parts.netloc.endswith(":"):
            raise UnusableUrl("a URL's port, when it has one, is a number")
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise UnusableUrl("an http or https URL with a host")
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise UnusableUrl("a URL with user info (user@host) is not taken")
        segments = tuple(unquote(s) for s in parts.path.split("/")[1:])
        if any(s in (".", "..") or "/" in s or "\\" in s for s in segments):
            raise UnusableUrl("a path with '.' or '..' segments is not taken")
        return cls(
            scheme, parts.hostname.lower().rstrip("."), port or _DEFAULT_PORTS[scheme], segments
        )

    def within(self, allowed: WebhookTarget) -> bool:
        """Same scheme, host and port, and the allowed path's segments begin this one's
        (`/hooks/` allows `/hooks/x`, not `/hooksx`; `/hooks` also allows `/hooks`)."""
        prefix = allowed.segments[:-1] if allowed.segments[-1:] == ("",) else allowed.segments
        return (self.scheme, self.host, self.port) == (
            allowed.scheme,
            allowed.host,
            allowed.port,
        ) and self.segments[: len(prefix)] == prefix


class WebhookDefinition(BaseModel):
    """Where an agent's events go as signed POSTs, and which URLs a thread of it may name."""

    # Every event of the agent's threads; None: only threads that name a URL get them.
    url: HttpUrl | None = None
    # The signing key: a secret of the host's Dapr secret store, and its key.
    secret: str = Field(min_length=1)
    key: str = "signing-key"
    # A thread may name its own URL (at creation) within one of these: same scheme, host
    # and port, and a path that starts with the allowed one's segments.
    allowed_urls: list[str] = Field(default_factory=list)

    @field_validator("allowed_urls")
    @classmethod
    def _parsed(cls, urls: list[str]) -> list[str]:
        for url in urls:
            WebhookTarget.of(url)
            if urlsplit(url).query or urlsplit(url).fragment:
                raise ValueError(f"allowed_urls: {url!r} has a query or fragment")
        return urls

    def allows(self, url: str) -> bool:
        try:
            target = WebhookTarget.of(url)
        except UnusableUrl:
            return False
        return any(target.within(WebhookTarget.of(allowed)) for allowed in self.allowed_urls)


def signing_key(secret: str) -> bytes:
    """The key a stored secret stands for: `whsec_<base64>` is the Standard Webhooks
    form; anything else is used as its UTF-8 bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the signing secret is not whsec_ + base64") from None
    return secret.encode()


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{event_id}.{timestamp}.".encode() + body
    mac = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()
