"""Who is calling: a person with a bearer JWT, or another service through its Dapr sidecar.

    Authorization: Bearer <JWT>   HS256 with a shared secret, or RS256/ES256 with keys from a
                                  JWKS file or URL; issuer and audience checked. The owner is
                                  the subject, prefixed by the tenant claim when one is set.
    dapr-caller-app-id: <app-id>  set by daprd on service invocation; trusted only for app-ids
                                  in THREADHOST_SERVICE_CALLERS, and only with daprd's
                                  dapr-api-token when APP_API_TOKEN is set (so it cannot be
                                  forged by calling the port directly). Owner: "app:<app-id>".
    THREADHOST_AUTH_MODE=none     local development only: everyone is "anonymous".
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from functools import cached_property

import jwt
from fastapi import Request

from gateway.problems import Problem
from threadhost.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    owner: str


def _unauthorized(detail: str) -> Problem:
    problem = Problem(401, "unauthorized", "Unauthorized", detail)
    problem.headers = {"WWW-Authenticate": "Bearer"}
    return problem


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.auth_mode == "jwt" and not (settings.jwt_secret or settings.jwt_jwks_file
                                                or settings.jwt_jwks_url):
            raise ValueError("THREADHOST_AUTH_MODE=jwt needs THREADHOST_JWT_SECRET, "
                             "THREADHOST_JWT_JWKS_FILE or THREADHOST_JWT_JWKS_URL")
        if settings.auth_mode == "jwt" and settings.app_api_token is None:
            # Without it, a request to the app's port could pose as a sidecar.
            raise ValueError("THREADHOST_AUTH_MODE=jwt needs Dapr's APP_API_TOKEN, set for "
                             "the app and its daprd (dapr.io/app-token-secret on Kubernetes)")
        if settings.auth_mode == "none":
            log.warning("AUTHENTICATION IS OFF (THREADHOST_AUTH_MODE=none): every caller is "
                        "'anonymous' and sees every thread. For local development only.")

    @cached_property
    def _jwks(self) -> jwt.PyJWKSet | jwt.PyJWKClient | None:
        if self.settings.jwt_jwks_file:
            return jwt.PyJWKSet.from_json(self.settings.jwt_jwks_file.read_text())
        if self.settings.jwt_jwks_url:
            return jwt.PyJWKClient(self.settings.jwt_jwks_url, cache_keys=True)
        return None

    def _key(self, token: str) -> object:
        if self._jwks is None:
            return self.settings.jwt_secret.get_secret_value()  # type: ignore[union-attr]
        if isinstance(self._jwks, jwt.PyJWKClient):
            return self._jwks.get_signing_key_from_jwt(token).key
        kid = jwt.get_unverified_header(token).get("kid")
        matching = [k for k in self._jwks.keys if k.key_id == kid] or self._jwks.keys[:1]
        return matching[0].key

    def caller(self, request: Request) -> Caller:
        s = self.settings
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return self._person(header[7:].strip())
        app_id = request.headers.get("dapr-caller-app-id")
        if app_id is not None:
            return self._service(request, app_id)
        if s.auth_mode == "none":
            return Caller(owner="anonymous")
        raise _unauthorized("a bearer token is required")

    def _person(self, token: str) -> Caller:
        s = self.settings
        if s.auth_mode == "none":
            return Caller(owner="anonymous")
        # A shared secret verifies HMAC tokens only, published keys the others: a token
        # never picks which kind of key checks it.
        symmetric = self._jwks is None
        algorithms = [a for a in s.jwt_algorithms if a.startswith("HS") == symmetric]
        try:
            claims = jwt.decode(token, self._key(token), algorithms=algorithms,
                                audience=s.jwt_audience, issuer=s.jwt_issuer,
                                options={"require": ["exp", "sub"]})
        except Exception as exc:  # noqa: BLE001 - whatever fails to verify is refused
            # The reason, never the token.
            raise _unauthorized(f"the token was refused: {type(exc).__name__}") from exc
        tenant = claims.get(s.tenant_claim) if s.tenant_claim else None
        return Caller(owner=f"{tenant}/{claims['sub']}" if tenant else str(claims["sub"]))

    def _service(self, request: Request, app_id: str) -> Caller:
        s = self.settings
        if s.app_api_token is not None:
            sent = request.headers.get("dapr-api-token", "")
            if not hmac.compare_digest(sent, s.app_api_token.get_secret_value()):
                raise _unauthorized("service calls must come through the Dapr sidecar")
        if app_id not in s.service_callers:
            raise Problem(403, "forbidden", "Forbidden",
                          f"app-id {app_id!r} may not call this service")
        return Caller(owner=f"app:{app_id}")
