"""Client-side rate limiting per operation, at RunPod's published per-endpoint limits.

Leaky buckets (aiolimiter) pace requests so a burst never exceeds the limit; a semaphore caps the
requests of one operation in flight at RunPod's concurrency limits. Both are per client instance:
several clients (several coordinators) share the endpoint's real limit, so the server's 429 is still
handled by the retry policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

__all__ = ["RUNPOD_LIMITS", "OperationLimit", "RateLimits"]


@dataclass(frozen=True)
class OperationLimit:
    requests: int
    period_s: float
    concurrent: int

    def __post_init__(self) -> None:
        if self.requests < 1 or self.period_s <= 0 or self.concurrent < 1:
            raise ValueError(f"invalid rate limit {self}")


# runpod-protocol.md §3. /retry and /health have no published limit: /cancel's and /status's.
RUNPOD_LIMITS: Mapping[str, OperationLimit] = {
    "run": OperationLimit(1000, 10, 200),
    "runsync": OperationLimit(2000, 10, 400),
    "status": OperationLimit(2000, 10, 400),
    "stream": OperationLimit(2000, 10, 400),
    "cancel": OperationLimit(100, 10, 100),
    "retry": OperationLimit(100, 10, 100),
    "purge_queue": OperationLimit(2, 10, 2),
    "health": OperationLimit(2000, 10, 400),
}


class RateLimits:
    """One leaky bucket and one concurrency cap per operation name."""

    def __init__(self, limits: Mapping[str, OperationLimit] | None = None):
        self.limits = dict(RUNPOD_LIMITS)
        self.limits.update(limits or {})
        self._buckets: dict[str, AsyncLimiter] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}

    def _get(self, operation: str) -> tuple[AsyncLimiter, asyncio.Semaphore]:
        if operation not in self._buckets:
            lim = self.limits.get(operation) or self.limits["status"]
            self._buckets[operation] = AsyncLimiter(lim.requests, lim.period_s)
            self._slots[operation] = asyncio.Semaphore(lim.concurrent)
        return self._buckets[operation], self._slots[operation]

    @asynccontextmanager
    async def slot(self, operation: str) -> AsyncIterator[None]:
        """Wait for a concurrency slot and a token; hold the slot for the request's duration."""
        bucket, sem = self._get(operation)
        async with sem:
            await bucket.acquire()
            yield
