"""End-user assertions: a short-lived JWT, signed by the host, that says on whose behalf a
tool call, an MCP call or a webhook is made, so the service that receives it can verify
who the end user is instead of trusting the model.

    header  {"alg": "ES256", "typ": "JWT", "kid": <RFC 7638 thumbprint>}
    claims  iss       the host's issuer (THREADHOST_ASSERTION_ISSUER, "threadhost")
            sub       the end user, as the service named them
            azp       the service that acts for them (its Dapr app-id)
            aud       who it is for: the tool's app-id, the MCP server's name, or the
                      webhook's URL
            thread_id, run_id, call_id (webhooks: no call)
            iat, exp  valid for ASSERTION_SECONDS
            jti       unique per call

The key is an EC P-256 private key (PEM) from the environment or the Dapr secret store;
its public half, and a previous one while a rotation settles, are published as a JWKS
(gateway/key_set.py). docs/tools.md shows a service verifying one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from actors.engine.run import ActingFor

ASSERTION_SECONDS = 300
ALGORITHM = "ES256"


class BadSigningKey(ValueError):
    """The configured key is not an EC P-256 private key in PEM (never quotes it)."""


def _b64(number: int) -> str:
    raw = number.to_bytes(32, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The key as a JWK, with its RFC 7638 thumbprint as its id."""
    numbers = key.public_numbers()
    required = {"crv": "P-256", "kty": "EC", "x": _b64(numbers.x), "y": _b64(numbers.y)}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    return {**required, "kid": kid, "use": "sig", "alg": ALGORITHM}


def _private_key(pem: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise BadSigningKey("the assertion signing key is not a PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise BadSigningKey("the assertion signing key must be an EC P-256 key (ES256)")
    return key


@dataclass(frozen=True)
class AssertionSigner:
    """Signs end-user assertions with the current key; publishes the current and the
    previous key's public halves."""

    key: ec.EllipticCurvePrivateKey
    issuer: str = "threadhost"
    previous: ec.EllipticCurvePublicKey | None = None

    @classmethod
    def from_pem(cls, pem: str, issuer: str, previous_pem: str | None = None) -> AssertionSigner:
        previous = _private_key(previous_pem).public_key() if previous_pem else None
        return cls(key=_private_key(pem), issuer=issuer, previous=previous)

    @property
    def kid(self) -> str:
        return public_jwk(self.key.public_key())["kid"]

    def key_set(self) -> dict[str, Any]:
        keys = [public_jwk(self.key.public_key())]
        if self.previous is not None:
            keys.append(public_jwk(self.previous))
        return {"keys": keys}

    def sign(self, acting_for: ActingFor, audience: str, **about: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": acting_for.user,
            "azp": acting_for.service,
            "aud": audience,
            "iat": now,
            "exp": now + ASSERTION_SECONDS,
            "jti": uuid.uuid4().hex,
            **about,
        }
        return jwt.encode(claims, self.key, algorithm=ALGORITHM, headers={"kid": self.kid})
