"""The engine as a host runs it: the agent catalog, the tool registry, the providers, prices
and retry policy, and what a turn's caller may choose of them (its agent's model, and only
a model whose price is known when a budget must be kept)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from actors.engine.agents import AgentCatalog, AgentDefinition
from actors.engine.outside_tools import OutsideTools
from actors.engine.provider import Provider
from actors.engine.recipes import UnknownRecipe, parse_recipe
from actors.engine.retry import RetryPolicy
from actors.engine.tool_set import ClientTool, RunTool, build_tool_set
from actors.engine.tools import ToolRegistry
from actors.engine.usage import Price, price_of


class ProviderSource(Protocol):
    async def for_agent(self, agent: AgentDefinition) -> Provider: ...


@dataclass(frozen=True)
class Engine:
    """What a step needs besides the thread's state."""

    catalog: AgentCatalog
    tools: ToolRegistry
    providers: ProviderSource
    prices: dict[str, Price]
    retry: RetryPolicy
    # Context windows by model, besides the ones the engine knows (engine/context.py).
    context_windows: dict[str, int]
    default_model: str
    # Service and MCP tools; None on a host that reaches no other app.
    outside: OutsideTools | None = None
    # Follow-ups a thread may have scheduled at once.
    max_followups: int = 16

    def agent(self, name: str, model: str | None = None) -> AgentDefinition:
        """The agent's current version, with the model for this turn resolved: a caller's
        `model` only if the agent allows it, and, for a run with a cost budget, only a
        model whose price is known (raises ModelRefused, naming the model)."""
        agent = self.catalog.current(name)
        if model is not None and model != "default":
            parse_recipe(model)  # a recipe at all, first
        if model is not None and model != agent.model and model not in agent.allowed_models:
            raise ModelRefused(
                f"model: the agent {name!r} does not let a caller choose "
                f"{model!r} (its allowed_models: "
                f"{', '.join(agent.allowed_models) or 'none'})"
            )
        model = model or agent.model
        if model == "default":
            model = self.default_model
        parse_recipe(model)
        if agent.limits.max_cost_usd is not None:
            for priced in (model, agent.context.summary_model):
                if priced and price_of(priced, self.prices) is None:
                    raise ModelRefused(
                        f"model: {priced!r} has no known price, so the agent {name!r}'s cost "
                        f"budget (max_cost_usd) cannot be kept: give its price in "
                        f"THREADHOST_PRICES"
                    )
        return agent.model_copy(update={"model": model})

    async def tool_set(
        self,
        agent: AgentDefinition,
        client_tools: Sequence[ClientTool] = (),
        disabled: Sequence[str] = (),
    ) -> list[RunTool]:
        """A new run's tools (raises ToolSetError). An MCP server's tool list is read
        at the agent version's first run on this host, then kept."""
        outside = await self.outside.tools_for(agent) if self.outside is not None else []
        return build_tool_set(agent, self.tools, client_tools, disabled, outside)


class ModelRefused(UnknownRecipe):
    """A turn's model that its agent does not allow, or cannot keep a budget with."""
