"""A retry policy for transient failures: exponential backoff with full jitter, bounded by a
deadline. Built on tenacity; holds no knowledge of what is retried (the caller says which errors
are transient), so the store, the scraper and the API client can share it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from loguru import logger
from tenacity import RetryCallState, Retrying, retry_if_exception

__all__ = ["Backoff"]

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Delay n (1-based) is uniform in [0, min(max_s, base_s * 2**(n-1))] ("full jitter").

    Retries stop at the first of: `max_attempts` tries, `max_elapsed_s` since the first try, or a
    delay that would end past the caller's deadline (the last error is then raised as is).
    """

    base_s: float = 0.25
    max_s: float = 5.0
    max_elapsed_s: float = 300.0
    max_attempts: int = 1000
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def delay_s(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.max_s, self.base_s * 2 ** (attempt - 1)))

    def call(
        self,
        fn: Callable[[], T],
        *,
        transient: Callable[[BaseException], bool],
        remaining_s: Callable[[], float] | None = None,
        what: str = "operation",
        describe: Callable[[BaseException], str] = str,
    ) -> T:
        """Run `fn()` until it succeeds, raises a non-transient error, or the budget runs out.

        `describe` turns an error into the line logged before each retry (never SQL or secrets).
        """
        t0 = time.monotonic()
        drawn: dict[int, float] = {}  # one delay per attempt, seen by both stop and wait

        def delay(state: RetryCallState) -> float:
            if state.attempt_number not in drawn:
                drawn[state.attempt_number] = self.delay_s(state.attempt_number)
            return drawn[state.attempt_number]

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.max_attempts:
                return True
            if time.monotonic() - t0 + delay(state) > self.max_elapsed_s:
                return True
            return remaining_s is not None and delay(state) >= remaining_s()

        def log(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.warning(
                "{} failed (try {}), retrying in {:.2f}s: {}",
                what,
                state.attempt_number,
                state.upcoming_sleep,
                "?" if exc is None else describe(exc),
            )

        retrying = Retrying(
            stop=stop,
            wait=delay,
            retry=retry_if_exception(transient),
            sleep=self.sleep,
            before_sleep=log,
            reraise=True,
        )
        return retrying(fn)
