"""Builds the engine an actor host runs with, once per process, from settings."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
from dapr.clients.exceptions import DaprInternalError
from pydantic import SecretStr

from actors.dapr_host.service_mesh import DaprMesh
from actors.engine.agents import AgentCatalog
from actors.engine.engine import Engine
from actors.engine.followups import FOLLOWUP_TOOLS
from actors.engine.outside_tools import OutsideTools
from actors.engine.recipes import Providers, VendorAccess
from actors.threads import metrics
from actors.tools import build_registry
from threadhost.common.settings import Settings, get_settings
from threadhost.common.sidecar import shared_actor_client

log = logging.getLogger(__name__)

_engine: Engine | None = None
_building = asyncio.Lock()


async def _keys_from_secret_store(settings: Settings) -> dict[str, str]:
    """Reads the vendor keys through the sidecar's secrets API (an actor is being
    activated, so the sidecar is up). A key set in the environment wins over the store's."""
    try:
        raw = await shared_actor_client().secret(
            settings.secret_store or "", settings.api_keys_secret
        )
        return json.loads(raw)
    except (DaprInternalError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
        # The store's answer may quote the request, never the keys: name the error only.
        log.error(
            "secret store %s could not be read (%s); vendor keys not loaded",
            settings.secret_store,
            type(exc).__name__,
        )
        return {}


def build_engine(settings: Settings, stored: dict[str, str]) -> Engine:
    catalog = AgentCatalog()
    for folder in settings.agents_dirs:
        catalog.load_folder(folder)

    def secret(value: SecretStr | None, name: str) -> str | None:
        return value.get_secret_value() if value is not None else stored.get(name) or None

    access = VendorAccess(
        openai_api_key=secret(settings.openai_api_key, "openai-api-key"),
        openai_base_url=settings.openai_base_url,
        anthropic_api_key=secret(settings.anthropic_api_key, "anthropic-api-key"),
        anthropic_base_url=settings.anthropic_base_url,
        timeout_seconds=settings.provider_timeout_seconds,
    )
    registry = build_registry(settings.tool_modules)
    metrics.know_tools(
        [
            *registry.names(),
            *FOLLOWUP_TOOLS,
            "ask_user",
            *(name for agent in catalog.names() for name in catalog.current(agent).tool_names()),
        ]
    )
    return Engine(
        catalog=catalog,
        tools=registry,
        providers=Providers(access),
        prices=settings.price_table(),
        retry=settings.retry,
        context_windows=settings.context_windows,
        default_model=settings.resolved_default_model(),
        max_followups=settings.max_followups,
        outside=OutsideTools(DaprMesh(settings.secret_store)),
    )


async def load_engine() -> Engine:
    """The process's engine, built at the first activation without blocking the event
    loop (the keys in a secret store are read then)."""
    global _engine
    if _engine is not None:
        return _engine
    async with _building:
        if _engine is None:
            settings = get_settings()
            stored = await _keys_from_secret_store(settings) if settings.secret_store else {}
            # Off the event loop: agent files are read and tool modules imported.
            _engine = await asyncio.to_thread(build_engine, settings, stored)
    return _engine


async def close_engine() -> None:
    """Closes what the engine opened: MCP clients, and the stdio servers they started."""
    if _engine is not None and _engine.outside is not None:
        await _engine.outside.aclose()
