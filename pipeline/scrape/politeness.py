"""Politeness: per-host concurrency, a host paused after a 429, robots.txt.

All state lives for one `fetch_pages` call (one job).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from loguru import logger

__all__ = ["DomainGate", "RobotsCache"]


class DomainGate:
    """At most `per_host` pages in flight per host; a 429 pauses the whole host until a time."""

    def __init__(self, per_host: int) -> None:
        self.per_host = max(1, per_host)
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._not_before: dict[str, float] = {}

    def penalize(self, host: str, delay_s: float) -> None:
        until = time.monotonic() + delay_s
        if until > self._not_before.get(host, 0.0):
            self._not_before[host] = until
            logger.info("backing off {} for {:.1f}s (rate limited)", host, delay_s)

    def wait_s(self, host: str) -> float:
        return max(0.0, self._not_before.get(host, 0.0) - time.monotonic())

    @contextlib.asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        sem = self._slots.setdefault(host, asyncio.Semaphore(self.per_host))
        async with sem:
            while (delay := self.wait_s(host)) > 0:
                await asyncio.sleep(delay)
            yield


class RobotsCache:
    """robots.txt per origin (scheme://host:port), fetched once per call through the egress proxy.

    RFC 9309: a 4xx robots.txt means everything is allowed; 5xx or unreachable means nothing is.
    """

    def __init__(self, user_agent: str, proxy_url: str, timeout_s: float) -> None:
        self.user_agent = user_agent
        self.proxy_url = proxy_url
        self.timeout_s = timeout_s
        self._parsers: dict[str, asyncio.Task] = {}

    async def allowed(self, url: str) -> tuple[bool, str]:
        """(allowed, reason when not)."""
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        task = self._parsers.get(origin)
        if task is None:
            task = asyncio.ensure_future(self._load(origin))
            self._parsers[origin] = task
        parser, note = await asyncio.shield(task)
        if parser is None:
            return (note == "", note)
        if parser.can_fetch(url, self.user_agent):
            return True, ""
        return False, f"disallowed by {origin}/robots.txt for user agent {self.user_agent!r}"

    async def _load(self, origin: str) -> tuple[object | None, str]:
        import httpx
        from protego import Protego

        try:
            async with httpx.AsyncClient(
                proxy=self.proxy_url,
                timeout=self.timeout_s,
                follow_redirects=True,
                max_redirects=5,
                headers={"user-agent": self.user_agent},
            ) as client:
                response = await client.get(f"{origin}/robots.txt")
        except httpx.HTTPError as exc:
            return None, f"robots.txt of {origin} unreachable ({type(exc).__name__}); not fetching"
        if response.status_code >= 500 or (
            response.status_code == 403 and response.headers.get("x-podfleet-refused")
        ):
            return (
                None,
                f"robots.txt of {origin} answered HTTP {response.status_code}; not fetching",
            )
        if response.status_code >= 400:
            return None, ""  # no robots.txt: everything allowed
        return Protego.parse(response.text[:500_000]), ""
