"""Bounds on concurrent model calls per vendor and per model across every host
(THREADHOST_MODEL_CONCURRENCY, e.g. {"openai": 50, "openai:gpt-4o": 10}): a step that
calls a model first takes a slot under each bound that names its model, from the host's
gate (actors/dapr_host/model_gate.py), and gives it back when the call ends. A step that
finds no slot within a short wait is not taken in this turn: its place stays in the
queue, and its thread is woken to take it when its slot comes (its watchdog, slowed to
RETRY_AFTER meanwhile, if that wake is lost). A herd of due runs queues instead of
failing on the vendor's rate limit, and no turn is held longer than the wait."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

# Takes a slot under each bound for the step (its ticket: run id and step): the function
# that gives them back, or None if they did not come within the wait.
TakeSlots = Callable[[list[str], str], Awaitable[Callable[[], None] | None]]
# How often a run whose step waits for a slot is watched (the wake's fallback).
RETRY_AFTER = timedelta(seconds=30)


class NoModelSlot(Exception):
    """No slot came free within the wait: the step is taken again later."""


def bounds_of(model: str, bounds: dict[str, int]) -> list[str]:
    """The bounds a model's calls count against, vendor first: `openai` and
    `openai:gpt-4o` for `openai:gpt-4o` (a recipe's options after `?` are not part of
    its name)."""
    name = model.split("?", 1)[0]
    vendor = name.split(":", 1)[0]
    return [key for key in dict.fromkeys((vendor, name)) if bounds.get(key)]
