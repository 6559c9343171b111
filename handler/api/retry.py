"""Retries of one API request: exponential backoff with full jitter on 429 (honouring
Retry-After), 5xx and connection errors; never on 4xx. Built on tenacity."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from loguru import logger
from podfleet.api.errors import ApiError, RateLimited
from podfleet.pipeline.backoff import full_jitter_s
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

__all__ = ["RetryPolicy", "call_with_retries"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` extra tries; delay n is uniform in [0, min(max_s, base_s * 2**n)]."""

    max_retries: int = 5
    base_s: float = 0.5
    max_s: float = 30.0
    max_retry_after_s: float = 60.0  # a server asking for longer than this is capped
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def delay_s(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds before retry number `attempt` (1-based) after `exc`."""
        if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, self.max_retry_after_s)
        return full_jitter_s(attempt, self.base_s, self.max_s, self.rng)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ApiError) and exc.retryable


async def call_with_retries(
    policy: RetryPolicy, operation: str, send: Callable[[], Awaitable[T]]
) -> T:
    """Run `send()` until it succeeds, fails for good or the retries run out (then raise)."""

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return policy.delay_s(state.attempt_number, exc)

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.debug(
            "{} retry {}/{} in {:.2f}s after: {}",
            operation,
            state.attempt_number,
            policy.max_retries,
            state.upcoming_sleep,
            exc,
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_retries + 1),
        wait=wait,
        retry=retry_if_exception(_retryable),
        sleep=policy.sleep,
        before_sleep=log_retry,
        reraise=True,
    )
    return await retrying(send)
