"""Who is calling: a person with a bearer JWT, or another service through its Dapr sidecar.

    Authorization: Bearer <JWT>   HS256 with a shared secret, or RS256/ES256 with keys from a
                                  JWKS file or URL; issuer and audience checked, a non-blank
                                  `sub` required (and the tenant claim, when one is set).
    dapr-caller-app-id: <app-id>  set by daprd on service invocation; trusted only for app-ids
                                  in THREADHOST_SERVICE_CALLERS, and only with daprd's
                                  dapr-api-token when APP_API_TOKEN is set (so it cannot be
                                  forged by calling the port directly).
    THREADHOST_AUTH_MODE=none     local development only: everyone is "anonymous".

A call that comes through daprd is its calling service's, whatever `Authorization` it
carries (the OpenAI SDK always sends a key). A service names the end user it acts for
with the `threadhost-end-user` header; a person's token cannot. Each caller is an owner
string (threadhost/common/owners.py).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from fastapi import Request

from gateway.problems import Forbidden, InvalidRequest, Problem, Unauthorized
from threadhost.common.owners import ANONYMOUS, end_user_owner, person_owner, service_owner
from threadhost.common.settings import Settings

log = logging.getLogger(__name__)

# A JWKS URL is asked again for a key id it does not know at most this often: a key the
# identity provider has just rotated in is taken within seconds, whatever tokens with
# made-up key ids arrive meanwhile, and the provider is asked at most this often.
JWKS_REFRESH_SECONDS = 5.0
# The header a service names the end user it acts for with.
END_USER_HEADER = "threadhost-end-user"
# An end user's name: visible ASCII, as a header carries it (the owner %-escapes it).
END_USER_PATTERN = re.compile(r"[\x21-\x7e]{1,200}")


@dataclass(frozen=True)
class Caller:
    owner: str


def _unauthorized(detail: str) -> Problem:
    return Unauthorized(detail)


class RemoteKeys:
    """The signing keys at a JWKS URL, fetched without blocking the event loop and kept;
    a token with a key id not among them makes one fetch (at most every
    JWKS_REFRESH_SECONDS, however many such tokens arrive; a failed fetch too)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._keys: jwt.PyJWKSet | None = None
        self._fetched = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        found = self._find(kid)
        if found is None:
            async with self._lock:
                found = self._find(kid)
                if found is None and time.monotonic() - self._fetched >= JWKS_REFRESH_SECONDS:
                    await self._fetch()
                    found = self._find(kid)
        if found is None:
            raise jwt.PyJWKClientError(f"no signing key with id {kid!r}")
        return found

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        return _matching(self._keys, kid) if self._keys is not None else None

    async def _fetch(self) -> None:
        self._fetched = time.monotonic()
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.get(self.url)
                response.raise_for_status()
            self._keys = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            log.error("JWKS at %s could not be read: %s", self.url, type(exc).__name__)


def _matching(keys: jwt.PyJWKSet, kid: str | None) -> jwt.PyJWK | None:
    if kid is None:
        return keys.keys[0] if len(keys.keys) == 1 else None
    return next((k for k in keys.keys if k.key_id == kid), None)


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.auth_mode == "jwt" and not (
            settings.jwt_secret or settings.jwt_jwks_file or settings.jwt_jwks_url
        ):
            raise ValueError(
                "THREADHOST_AUTH_MODE=jwt needs THREADHOST_JWT_SECRET, "
                "THREADHOST_JWT_JWKS_FILE or THREADHOST_JWT_JWKS_URL"
            )
        if settings.auth_mode == "jwt" and settings.app_api_token is None:
            # Without it, a request to the app's port could pose as a sidecar.
            raise ValueError(
                "THREADHOST_AUTH_MODE=jwt needs Dapr's APP_API_TOKEN, set for "
                "the app and its daprd (dapr.io/app-token-secret on Kubernetes)"
            )
        if settings.auth_mode == "none":
            log.warning(
                "AUTHENTICATION IS OFF (THREADHOST_AUTH_MODE=none): every caller is "
                "'anonymous' and sees every thread. For local development only."
            )
        # Read at start-up, not on a request: a file read would block the event loop.
        self._file_keys = (
            jwt.PyJWKSet.from_json(settings.jwt_jwks_file.read_text())
            if settings.jwt_jwks_file
            else None
        )
        self._remote_keys = (
            RemoteKeys(settings.jwt_jwks_url)
            if settings.jwt_jwks_url and not settings.jwt_jwks_file
            else None
        )

    async def _key(self, token: str) -> Any:
        kid = jwt.get_unverified_header(token).get("kid")
        if self._remote_keys is not None:
            return (await self._remote_keys.key(kid)).key
        if self._file_keys is not None:
            found = _matching(self._file_keys, kid)
            if found is None:
                raise jwt.PyJWKClientError(f"no signing key with id {kid!r}")
            return found.key
        return self.settings.jwt_secret.get_secret_value()  # type: ignore[union-attr]

    async def caller(self, request: Request) -> Caller:
        s = self.settings
        end_user = request.headers.get(END_USER_HEADER)
        app_id = request.headers.get("dapr-caller-app-id")
        if app_id is None:
            if end_user is not None:
                # Checked first: a person's token never reaches an end user's threads,
                # valid or not.
                raise Forbidden(f"only a service names an end user ({END_USER_HEADER})")
            header = request.headers.get("authorization", "")
            if header.lower().startswith("bearer "):
                return await self._person(header[7:].strip())
            if s.auth_mode == "none":
                return Caller(owner=ANONYMOUS)
            raise _unauthorized("a bearer token is required")
        # Through Dapr service invocation: the calling service, proven by its sidecar,
        # whatever `Authorization` it sends (the OpenAI SDK always sends one).
        service = self._service(request, app_id)
        if end_user is None:
            return service
        if END_USER_PATTERN.fullmatch(end_user) is None:
            raise InvalidRequest(
                f"header {END_USER_HEADER}: 1 to 200 visible ASCII characters",
                title="Invalid end user",
            )
        return Caller(owner=end_user_owner(app_id, end_user))

    async def _person(self, token: str) -> Caller:
        s = self.settings
        if s.auth_mode == "none":
            return Caller(owner=ANONYMOUS)
        # A shared secret verifies HMAC tokens only, published keys the others: a token
        # never picks which kind of key checks it.
        symmetric = self._file_keys is None and self._remote_keys is None
        algorithms = [a for a in s.jwt_algorithms if a.startswith("HS") == symmetric]
        try:
            claims = jwt.decode(
                token,
                await self._key(token),
                algorithms=algorithms,
                audience=s.jwt_audience,
                issuer=s.jwt_issuer,
                options={"require": ["exp", "sub"]},
            )
        except Exception as exc:  # noqa: BLE001 - whatever fails to verify is refused
            # The reason, never the token.
            raise _unauthorized(f"the token was refused: {type(exc).__name__}") from exc
        subject = _claim(claims, "sub")
        if s.tenant_claim is None:
            return Caller(owner=person_owner(subject))
        return Caller(owner=person_owner(subject, _claim(claims, s.tenant_claim)))

    def _service(self, request: Request, app_id: str) -> Caller:
        s = self.settings
        if s.app_api_token is not None:
            if not same_token(
                request.headers.get("dapr-api-token", ""), s.app_api_token.get_secret_value()
            ):
                raise _unauthorized("service calls must come through the Dapr sidecar")
        if app_id not in s.service_callers:
            raise Forbidden(f"app-id {json.dumps(app_id)} may not call this service")
        return Caller(owner=service_owner(app_id))


def same_token(sent: str | bytes, expected: str) -> bool:
    """Whether a token header holds the expected token, in constant time; compared as
    bytes, so a header of any characters is simply not the token."""
    if isinstance(sent, str):
        sent = sent.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(sent, expected.encode())


def _claim(claims: dict, name: str) -> str:
    """A claim that names the caller: a string with something in it, or the token is
    refused (an empty subject would make every such token one owner)."""
    value = claims.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _unauthorized(f"the token's {json.dumps(name)} claim is missing or blank")
    return value
