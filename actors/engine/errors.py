"""Errors the engine deals in; vendor SDK errors are mapped to these at each adapter's edge.

ProviderError
├── RateLimited            429; carries the vendor's Retry-After   (retried)
├── ProviderUnavailable    5xx, a refused connection, a cut stream (retried)
├── ProviderTimeout        no answer within the configured timeout (retried)
├── AuthenticationFailed   401/403: the key is missing or wrong
└── BadRequest             any other 4xx: the request itself is wrong
    └── ContextOverflow    the request is longer than the model's context window
"""

from __future__ import annotations


class ProviderError(Exception):
    retryable = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(ProviderError):
    retryable = True

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int | None = 429
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    retryable = True


class ProviderTimeout(ProviderError):
    retryable = True


class AuthenticationFailed(ProviderError):
    pass


class BadRequest(ProviderError):
    pass


class ContextOverflow(BadRequest):
    pass
