"""Builds the engine an actor host runs with, once per process, from settings."""

from __future__ import annotations

import asyncio
import logging

from pydantic import SecretStr

from actors.dapr_host.service_mesh import DaprMesh
from actors.engine.agents import AgentCatalog
from actors.engine.engine import Engine
from actors.engine.followups import FOLLOWUP_TOOLS
from actors.engine.outside_tools import OutsideTools
from actors.engine.recipes import Providers, VendorAccess
from actors.threads import metrics
from actors.tools import build_registry
from threadhost.common.host_secrets import assertion_signer, secret_of, stored_secrets
from threadhost.common.settings import Settings, get_settings

log = logging.getLogger(__name__)

_engine: Engine | None = None
_building = asyncio.Lock()


def build_engine(settings: Settings, stored: dict[str, str]) -> Engine:
    catalog = AgentCatalog()
    for folder in settings.agents_dirs:
        catalog.load_folder(folder)

    def secret(value: SecretStr | None, name: str) -> str | None:
        return secret_of(value, stored, name)

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
        outside=OutsideTools(
            DaprMesh(settings.secret_store), signer=assertion_signer(settings, stored)
        ),
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
            stored = await stored_secrets(settings)
            # Off the event loop: agent files are read and tool modules imported.
            _engine = await asyncio.to_thread(build_engine, settings, stored)
    return _engine


async def close_engine() -> None:
    """Closes what the engine opened: MCP clients, and the stdio servers they started."""
    if _engine is not None and _engine.outside is not None:
        await _engine.outside.aclose()
