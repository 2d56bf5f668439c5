"""Builds a provider from a recipe string, "vendor:model", with keys from settings."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from actors.engine.agents import AgentDefinition
from actors.engine.provider import Provider
from actors.engine.scripted import ScriptedProvider

VENDORS = ("scripted", "openai", "openai-responses", "anthropic")
# Vendor providers (SDK clients with their connection pools) a host keeps at once.
KEPT_PROVIDERS = 16


@dataclass(frozen=True)
class VendorAccess:
    """Keys and endpoints; a missing key falls back to the SDK's own environment variable."""

    openai_api_key: str | None = None
    openai_base_url: str | None = None
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    timeout_seconds: float = 120.0


class UnknownRecipe(ValueError):
    pass


def parse_recipe(recipe: str) -> tuple[str, str]:
    vendor, _, model = recipe.partition(":")
    if vendor not in VENDORS:
        raise UnknownRecipe(f"unknown vendor {vendor!r} in {recipe!r}; use one of {VENDORS}")
    if vendor != "scripted" and not model:
        raise UnknownRecipe(f"{recipe!r} names no model: write {vendor}:<model>")
    return vendor, model


class Providers:
    """Providers by recipe. Vendor clients are made once per process and reused: each
    holds a connection pool. Scripted providers are made per agent, from its script.

    A vendor's first provider is made on a worker thread: importing its SDK and making
    its client (TLS context, pool) held the event loop 0.7-2.5 s on an idle host, more
    under load, and a loop held past daprd's app health probe costs the host its actors
    in the middle of the very step that needed the SDK."""

    def __init__(self, access: VendorAccess, kept: int = KEPT_PROVIDERS) -> None:
        self._access = access
        # Least recently used last out: each holds an SDK client (~0.8 MiB), so however
        # many model names agents list, the host keeps `kept` of them at most.
        self._made: OrderedDict[tuple[str, str], Provider] = OrderedDict()
        self._kept = kept
        self._making = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._made)

    async def for_agent(self, agent: AgentDefinition) -> Provider:
        vendor, model = parse_recipe(agent.model)
        if vendor == "scripted":
            return ScriptedProvider(agent.script, model=model or "scripted")
        key = (vendor, model)
        if key not in self._made:
            async with self._making:
                if key not in self._made:
                    self._made[key] = await asyncio.to_thread(
                        _vendor_provider, vendor, model, self._access
                    )
                    while len(self._made) > self._kept:
                        # A step still using it keeps its own reference.
                        self._made.popitem(last=False)
        self._made.move_to_end(key)
        return self._made[key]


def _vendor_provider(vendor: str, model: str, access: VendorAccess) -> Provider:
    if vendor == "anthropic":
        from actors.engine.providers.anthropic_messages import AnthropicMessages

        return AnthropicMessages(
            model,
            api_key=access.anthropic_api_key,
            base_url=access.anthropic_base_url,
            timeout=access.timeout_seconds,
        )
    from actors.engine.providers.openai_chat import OpenAIChat
    from actors.engine.providers.openai_responses import OpenAIResponses

    kind = OpenAIResponses if vendor == "openai-responses" else OpenAIChat
    return kind(
        model,
        api_key=access.openai_api_key,
        base_url=access.openai_base_url,
        timeout=access.timeout_seconds,
    )
