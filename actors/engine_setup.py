"""Builds the engine an actor host runs with, once per process, from settings."""

from __future__ import annotations

import logging
from functools import lru_cache

import httpx
from dapr.conf import settings as dapr_settings
from pydantic import SecretStr

from actors.engine.agents import AgentCatalog
from actors.engine.recipes import Providers, VendorAccess
from actors.run_steps import Engine
from actors.tools import build_registry
from threadhost.settings import Settings, get_settings

log = logging.getLogger(__name__)


def _keys_from_secret_store(settings: Settings) -> dict[str, str]:
    """Reads the vendor keys through the sidecar's secrets API (the actor is being called,
    so the sidecar is up). A key set in the environment wins over the store's."""
    url = (f"http://{dapr_settings.DAPR_RUNTIME_HOST}:{dapr_settings.DAPR_HTTP_PORT}"
           f"/v1.0/secrets/{settings.secret_store}/{settings.api_keys_secret}")
    headers = ({"dapr-api-token": dapr_settings.DAPR_API_TOKEN}
               if dapr_settings.DAPR_API_TOKEN else {})
    response = httpx.get(url, headers=headers, timeout=10)
    if not response.is_success:
        # The store's answer may quote the request, never the keys: log the status only.
        log.error("secret store %s answered %s; vendor keys not loaded", settings.secret_store,
                  response.status_code)
        return {}
    return response.json()


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    catalog = AgentCatalog()
    for folder in settings.agents_dirs:
        catalog.load_folder(folder)

    stored = _keys_from_secret_store(settings) if settings.secret_store else {}

    def secret(value: SecretStr | None, name: str) -> str | None:
        return value.get_secret_value() if value is not None else stored.get(name) or None

    access = VendorAccess(
        openai_api_key=secret(settings.openai_api_key, "openai-api-key"),
        openai_base_url=settings.openai_base_url,
        anthropic_api_key=secret(settings.anthropic_api_key, "anthropic-api-key"),
        anthropic_base_url=settings.anthropic_base_url,
        timeout_seconds=settings.provider_timeout_seconds)
    return Engine(catalog=catalog, tools=build_registry(settings.tool_modules),
                  providers=Providers(access),
                  prices=settings.price_table(), retry=settings.retry,
                  context_window=settings.context_window_messages,
                  default_model=settings.resolved_default_model())
