"""Token usage of model calls, and what they cost by a price table."""

from __future__ import annotations

import re

from pydantic import BaseModel


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    # Parts of the above: input served from the vendor's cache, output spent reasoning.
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{f: getattr(self, f) + getattr(other, f) for f in Usage.model_fields})

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Price(BaseModel):
    """US dollars per million tokens."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, usage: Usage) -> float:
        cached_rate = self.input if self.cached_input is None else self.cached_input
        fresh = usage.input_tokens - usage.cached_tokens
        return (
            fresh * self.input
            + usage.cached_tokens * cached_rate
            + usage.output_tokens * self.output
        ) / 1_000_000


# Defaults a user overrides or extends through settings (THREADHOST_PRICES). A model with
# no price costs 0: a run with a cost budget on such a model is refused at its start.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(input=2.5, output=10.0, cached_input=1.25),
    "gpt-4o-mini": Price(input=0.15, output=0.6, cached_input=0.075),
    "gpt-4.1": Price(input=2.0, output=8.0, cached_input=0.5),
    "gpt-4.1-mini": Price(input=0.4, output=1.6, cached_input=0.1),
    "claude-sonnet-4-5": Price(input=3.0, output=15.0, cached_input=0.3),
    "claude-haiku-4-5": Price(input=1.0, output=5.0, cached_input=0.1),
    "scripted": Price(input=0.0, output=0.0),
}


# Roughly how many characters of a request make a token, across vendors' tokenizers.
CHARS_PER_TOKEN = 4


def estimated_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


# A vendor's snapshot suffix: `-2024-07-18` (OpenAI), `-20251001` (Anthropic), `-latest`.
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


def price_of(model: str, prices: dict[str, Price]) -> Price | None:
    """The price of a model by any name it goes by: as the table says it, a recipe
    (`openai:gpt-4o-mini`), or the dated snapshot a vendor reports
    (`gpt-4o-mini-2024-07-18`, `claude-haiku-4-5-20251001`)."""
    for name in (model, model.partition(":")[2] if ":" in model else None):
        if not name:
            continue
        if name in prices:
            return prices[name]
        alias = _SNAPSHOT.sub("", name)
        if alias in prices:
            return prices[alias]
    return None


def cost_of(model: str, usage: Usage, prices: dict[str, Price]) -> float:
    price = price_of(model, prices)
    return price.cost(usage) if price else 0.0
