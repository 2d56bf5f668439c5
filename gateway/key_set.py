"""The public keys that verify the host's end-user assertions (actors/engine/assertions.py),
as a JWKS at /.well-known/jwks.json: open to anyone, as public keys are. Read from the
same settings and secret store the actor hosts sign with, and read again after a while,
so a rotated key shows within a minute."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from threadhost.common.host_secrets import assertion_signer, stored_secrets
from threadhost.common.settings import Settings

PATH = "/.well-known/jwks.json"
READ_AGAIN_SECONDS = 60.0

router = APIRouter()


class KeySet:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._keys: dict[str, Any] = {"keys": []}
        self._read_at = float("-inf")

    async def current(self) -> dict[str, Any]:
        if time.monotonic() - self._read_at >= READ_AGAIN_SECONDS:
            signer = assertion_signer(self._settings, await stored_secrets(self._settings))
            self._keys = signer.key_set() if signer is not None else {"keys": []}
            self._read_at = time.monotonic()
        return self._keys


@router.get(
    PATH,
    summary="The keys that verify end-user assertions",
    response_description="a JWKS (RFC 7517); empty when no signing key is set",
)
async def key_set(request: Request) -> JSONResponse:
    keys = await request.app.state.key_set.current()
    return JSONResponse(keys, headers={"cache-control": f"max-age={int(READ_AGAIN_SECONDS)}"})
