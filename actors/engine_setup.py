"""Builds the engine an actor host runs with, once per process, from settings."""

from __future__ import annotations

from functools import lru_cache

from actors.engine.agents import AgentCatalog
from actors.engine.recipes import Providers, VendorAccess
from actors.run_steps import Engine
from actors.tools import build_registry
from threadhost.settings import get_settings


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    catalog = AgentCatalog()
    for folder in settings.agents_dirs:
        catalog.load_folder(folder)

    def secret(value: object) -> str | None:
        return value.get_secret_value() if value is not None else None  # type: ignore[attr-defined]

    access = VendorAccess(
        openai_api_key=secret(settings.openai_api_key), openai_base_url=settings.openai_base_url,
        anthropic_api_key=secret(settings.anthropic_api_key),
        anthropic_base_url=settings.anthropic_base_url,
        timeout_seconds=settings.provider_timeout_seconds)
    return Engine(catalog=catalog, tools=build_registry(settings.tool_modules),
                  providers=Providers(access),
                  prices=settings.price_table(), retry=settings.retry,
                  context_window=settings.context_window_messages,
                  default_model=settings.resolved_default_model())
