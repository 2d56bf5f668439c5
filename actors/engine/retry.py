"""Retries a model call on rate limits and transient failures, within a bound."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel

from actors.engine.errors import ProviderError, RateLimited

T = TypeVar("T")


class RetryPolicy(BaseModel):
    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0

    def delay(self, attempt: int, error: ProviderError) -> float:
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(error.retry_after, self.max_delay)
        backoff = self.base_delay * 2 ** (attempt - 1)
        return min(backoff * (0.5 + random.random() / 2), self.max_delay)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    for attempt in range(1, policy.attempts + 1):
        try:
            return await call()
        except ProviderError as error:
            if not error.retryable or attempt == policy.attempts:
                raise
            await sleep(policy.delay(attempt, error))
    raise AssertionError("unreachable")
