"""The retry policy for transient failures: exponential backoff with full jitter, bounded by a
deadline. Built on tenacity; holds no knowledge of what is retried (the caller says which errors
are transient).

`full_jitter_s` is the one delay rule and `parse_retry_after_s` the one reading of a server's
`Retry-After`: the store (`Backoff.call`), the API client (`podfleet.api.retry`), the coordinator's
chunk retries and the scraper all use them.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from loguru import logger
from tenacity import RetryCallState, Retrying, retry_if_exception

__all__ = ["Backoff", "full_jitter_s", "parse_retry_after_s"]

T = TypeVar("T")

_RNG = random.Random()


def full_jitter_s(
    attempt: int, base_s: float, max_s: float, rng: random.Random | None = None
) -> float:
    """Seconds before retry `attempt` (1-based): uniform in [0, min(max_s, base_s * 2**(n-1))].

    "Full jitter" (AWS architecture blog, "Exponential Backoff And Jitter"): clients that failed
    together do not retry together.
    """
    return (rng or _RNG).uniform(0, min(max_s, base_s * 2 ** (max(1, attempt) - 1)))


def parse_retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date, RFC 9110 §10.2.3); None when absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


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
        return full_jitter_s(attempt, self.base_s, self.max_s, self.rng)

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
