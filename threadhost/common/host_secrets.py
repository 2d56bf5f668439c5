"""The host's secrets: read once through the sidecar's secrets API, and the end-user
assertion signer made of them (the actor host signs with it; the gateway publishes its
public keys)."""

from __future__ import annotations

import json
import logging

import aiohttp
from dapr.clients.exceptions import DaprInternalError
from pydantic import SecretStr

from actors.engine.assertions import AssertionSigner, BadSigningKey
from threadhost.common.settings import Settings
from threadhost.common.sidecar import shared_actor_client

log = logging.getLogger(__name__)


async def stored_secrets(settings: Settings) -> dict[str, str]:
    """The secret `api_keys_secret` of the secret store, if one is set (the sidecar is up:
    an actor is being activated, or a request came). A value set in the environment wins
    over the store's."""
    if not settings.secret_store:
        return {}
    try:
        raw = await shared_actor_client().secret(settings.secret_store, settings.api_keys_secret)
        return json.loads(raw)
    except (DaprInternalError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
        # The store's answer may quote the request, never the keys: name the error only.
        log.error(
            "secret store %s could not be read (%s); its keys are not loaded",
            settings.secret_store,
            type(exc).__name__,
        )
        return {}


def secret_of(value: SecretStr | None, stored: dict[str, str], name: str) -> str | None:
    return value.get_secret_value() if value is not None else stored.get(name) or None


def assertion_signer(settings: Settings, stored: dict[str, str]) -> AssertionSigner | None:
    """The signer of end-user assertions, if a key is set; a key that is not one is logged
    (without itself) and no assertion is signed."""
    pem = secret_of(settings.assertion_signing_key, stored, "assertion-signing-key")
    if pem is None:
        return None
    try:
        return AssertionSigner.from_pem(
            pem, settings.assertion_issuer, stored.get("assertion-signing-key-previous")
        )
    except BadSigningKey as exc:
        log.error("%s: end-user assertions are not signed", exc)
        return None
