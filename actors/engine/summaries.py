"""Compaction's model call: older messages (and the summary before them) folded into a new
summary by the agent's summary model. The thread service reads the messages and stores
the summary (actors/threads/context.py); what is asked, of whom, and what it cost is here."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from actors.engine.context import (
    SUMMARY_PROMPT,
    Budget,
    fitted,
    message_tokens,
    transcript,
)
from actors.engine.errors import ProviderError
from actors.engine.messages import AssistantText, Message, UserText
from actors.engine.provider import ModelRequest, ModelResponse, ModelSettings
from actors.engine.recipes import parse_recipe
from actors.engine.retry import with_retries
from actors.engine.run import ModelCallRecord, RunRecord
from actors.engine.usage import cost_of, estimated_tokens

if TYPE_CHECKING:
    from actors.engine.engine import Engine

log = logging.getLogger(__name__)
# A summary takes at most this share of the budget (the summarizer is asked for no more).
SUMMARY_SHARE = 8
MAX_SUMMARY_TOKENS = 4_000


@dataclass(frozen=True)
class Summary:
    text: str
    # Messages left out: too many for the summarizer's own request.
    omitted: int
    call: ModelCallRecord


def budget_of(run: RunRecord, engine: Engine, recipe: str | None = None) -> Budget:
    """The token budget of a request of the run's agent (or of `recipe`'s model)."""
    agent = run.agent
    vendor, model = parse_recipe(recipe or agent.model)
    output = agent.settings.max_output_tokens if recipe is None else None
    return Budget.of(agent.context, model or vendor, output, engine.context_windows)


def summary_recipe(run: RunRecord) -> str:
    return run.agent.context.summary_model or run.agent.model


@dataclass(frozen=True)
class SummaryRoom:
    # The summarizer's request's budget.
    budget: Budget
    # Its tokens left for the messages, besides its prompt and the summary before them.
    tokens: int


def room_of(run: RunRecord, engine: Engine, previous: str | None) -> SummaryRoom:
    budget = budget_of(run, engine, summary_recipe(run))
    previous_tokens = estimated_tokens(previous) if previous is not None else 0
    return SummaryRoom(budget, budget.tokens - estimated_tokens(SUMMARY_PROMPT) - previous_tokens)


async def summarize(
    run: RunRecord,
    engine: Engine,
    room: SummaryRoom,
    previous: str | None,
    older: list[Message],
    omitted: int,
) -> Summary | None:
    """The new summary of `previous` and `older` (after `omitted` messages not read); of
    the older messages, what fits the summarizer's request (`room`), newest first. None if the
    summarizer failed (the window fits without it: the next turn tries again)."""
    recipe, budget = summary_recipe(run), room.budget
    sized = [min(message_tokens(m), budget.message_cap) for m in older]
    skip = 0
    while skip < len(older) and sum(sized[skip:]) > room.tokens:
        skip += 1
    text = transcript(
        previous, [fitted(m, budget.message_cap) for m in older[skip:]], omitted + skip
    )
    limit = min(budget.tokens // SUMMARY_SHARE, MAX_SUMMARY_TOKENS)
    request = ModelRequest(
        system=SUMMARY_PROMPT,
        messages=[UserText(text=text)],
        settings=ModelSettings(max_output_tokens=limit),
        purpose="summary",
    )
    provider = await engine.providers.for_agent(run.agent.model_copy(update={"model": recipe}))
    started = time.perf_counter()
    try:
        response: ModelResponse = await with_retries(
            lambda: provider.complete(request), engine.retry
        )
    except ProviderError as exc:
        log.warning(
            "run %s: compaction failed (%s): the older messages are left out "
            "without a summary this turn",
            run.run_id,
            type(exc).__name__,
        )
        return None
    summary = "".join(p.text for p in response.parts if isinstance(p, AssistantText))
    call = ModelCallRecord(
        step=run.steps,
        vendor=provider.vendor,
        model=response.model,
        usage=response.usage,
        purpose="summary",
        cost_usd=cost_of(response.model, response.usage, engine.prices),
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return Summary(text=summary[: limit * 4], omitted=omitted + skip, call=call)
