"""One browser context serving one `fetch_pages` call: page pool, retries, politeness, budget."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from podfleet.pipeline.backoff import full_jitter_s
from podfleet.pipeline.config import ScrapeConfig
from podfleet.pipeline.scrape.browser import WarmBrowser
from podfleet.pipeline.scrape.egress import EgressProxy
from podfleet.pipeline.scrape.fetch import QUIET_TRACKER, Attempt, PageSlot, fetch_once
from podfleet.pipeline.scrape.guard import AddressGuard, host_of
from podfleet.pipeline.scrape.models import PageRequest, PageResult
from podfleet.pipeline.scrape.politeness import DomainGate, RobotsCache

__all__ = ["BrowserLost", "ScrapeSession", "disable_http_cache"]

_OPEN_TIMEOUT_S = 60.0
# Retry n of a page waits full_jitter_s(n, ...) unless the site sent Retry-After.
RETRY_BASE_S = 0.5
RETRY_MAX_S = 30.0


class BrowserLost(Exception):
    """The browser disconnected while we waited on it."""


async def unless_lost(
    awaitable: Any, lost: asyncio.Event, timeout_s: float = _OPEN_TIMEOUT_S
) -> Any:
    """Await a browser call that has no timeout of its own (new_context, new_page) and that
    Playwright may leave pending forever when the browser dies under it."""
    call = asyncio.ensure_future(awaitable)
    watch = asyncio.ensure_future(lost.wait())
    try:
        done, _ = await asyncio.wait(
            {call, watch}, timeout=timeout_s, return_when="FIRST_COMPLETED"
        )
    finally:
        watch.cancel()
    if call in done:
        return call.result()
    call.cancel()
    call.add_done_callback(lambda f: f.cancelled() or f.exception())
    if watch in done:
        raise BrowserLost("the browser disconnected")
    raise TimeoutError(f"the browser did not answer within {timeout_s:.0f}s")


async def disable_http_cache(context: Any, page: Any) -> Any:
    """Turn Chromium's HTTP cache off for `page`, before its first navigation.

    Why: with the cache on, requests for one URL wait for each other (Chromium's per-entry cache
    lock), so a stylesheet or script that every page of a site shares and that the site sends
    without caching headers is fetched by one page at a time — one file queue across all pages
    of a call (at 300 ms a request, 2.4 pages/s on one host whatever the concurrency). Off, each
    page fetches it on its own, in parallel, as it did while a context-wide route was installed
    (Playwright turns the cache off under interception). A CDP session of our own carries the
    setting (DevTools' "Disable cache"); its network domain must stay enabled for it to hold,
    with no response bodies buffered. Returns the session (it ends with the page).
    """
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable", {"maxTotalBufferSize": 0, "maxResourceBufferSize": 0})
    await cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    return cdp


class ScrapeSession:
    """Fetches a set of requests in one fresh context of `warm`; fills `results` by index."""

    def __init__(
        self,
        warm: WarmBrowser,
        config: ScrapeConfig,
        guard: AddressGuard,
        proxy: EgressProxy,
        gate: DomainGate,
        robots: RobotsCache | None,
        concurrency: int,
        deadline: float,
    ) -> None:
        self.warm = warm
        self.config = config
        self.guard = guard
        self.proxy = proxy
        self.gate = gate
        self.robots = robots
        self.deadline = deadline
        self.slots = asyncio.Semaphore(concurrency)
        self.idle: list[PageSlot] = []
        self.by_page: dict[Any, PageSlot] = {}
        self.lost: set[int] = set()  # indices that failed because the browser went away
        self.context: Any = None

    async def open(self) -> None:
        self.context = await unless_lost(
            self.warm.browser.new_context(
                user_agent=self.config.user_agent,
                accept_downloads=False,
                proxy={"server": self.proxy.server_url},
                service_workers="block",
            ),
            self.warm.disconnected,
        )
        self.context.set_default_timeout(max(1000, self.config.render_timeout_s * 1000))
        # No context-wide route: it would send every request to Python and back. Addresses
        # are enforced by the egress proxy on every request; images and fonts are off by
        # Chromium switches (browser.BLOCK_ARGS); inline HTML is served by a route on its page
        # only while it navigates (fetch.PageSlot.serve_inline).
        await self.context.add_init_script(QUIET_TRACKER)

    async def close(self) -> None:
        if self.context is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.context.close(), 10)

    async def _acquire_page(self) -> PageSlot:
        if self.idle:
            return self.idle.pop()
        page = await unless_lost(self.context.new_page(), self.warm.disconnected)
        try:
            await unless_lost(disable_http_cache(self.context, page), self.warm.disconnected)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(page.close(), 5)
            raise
        slot = PageSlot(page, self.config.max_page_bytes)
        self.by_page[page] = slot
        return slot

    async def _release_page(self, slot: PageSlot, healthy: bool) -> None:
        if healthy and not slot.page.is_closed():
            self.idle.append(slot)
            return
        self.by_page.pop(slot.page, None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(slot.page.close(), 5)

    async def fetch(self, index: int, req: PageRequest) -> PageResult | None:
        """The final result of one request (after retries); None when the browser was lost."""
        t0 = time.monotonic()
        host = host_of(req.url) if req.url and req.html is None else ""
        if host:  # refuse an unsafe source at once, with the guard's reason and the URL
            verdict = await self.guard.check_url(req.url or "")
            if not verdict.allowed:
                return PageResult(
                    url=req.url,
                    error=f"{verdict.reason} ({req.url})",
                    retryable=verdict.reason.startswith("could not resolve"),
                    attempts=1,
                    timings_ms={"total": round((time.monotonic() - t0) * 1000, 1)},
                )
        attempt_no = 0
        while True:
            attempt_no += 1
            attempt = await self._attempt(index, req, host)
            if attempt is None:
                return None
            result = attempt.result
            result.attempts = attempt_no
            if attempt.browser_lost:
                self.lost.add(index)
                return None
            if result.ok or not attempt.retry or attempt_no > self.config.retries:
                break
            delay_s = attempt.retry_after_s
            if delay_s is None:
                delay_s = full_jitter_s(attempt_no, RETRY_BASE_S, RETRY_MAX_S)
            if attempt.rate_limited:
                self.gate.penalize(host, delay_s)
            if time.monotonic() + delay_s >= self.deadline:
                result.error = f"{result.error}; no time left in the scrape budget to retry"
                break
            await asyncio.sleep(delay_s)
        result.timings_ms["total"] = round((time.monotonic() - t0) * 1000, 1)
        return result

    async def _attempt(self, index: int, req: PageRequest, host: str) -> Attempt | None:
        gate = self.gate.slot(host) if host else contextlib.nullcontext()
        async with gate, self.slots:
            if time.monotonic() >= self.deadline:
                return Attempt(
                    PageResult(
                        url=req.url,
                        error="scrape budget exhausted before this page",
                        retryable=True,
                    )
                )
            if self.robots is not None and host:
                allowed, why = await self.robots.allowed(req.url or "")
                if not allowed:
                    return Attempt(PageResult(url=req.url, error=f"refused: {why}"))
            if self.warm.disconnected.is_set():
                self.lost.add(index)
                return None
            try:
                slot = await self._acquire_page()
            except Exception as exc:
                if self.warm.disconnected.is_set() or not self.warm.browser.is_connected():
                    self.lost.add(index)
                    return None
                return Attempt(
                    PageResult(url=req.url, error=f"could not open a page: {exc}", retryable=True),
                    retry=True,
                )
            attempt = await fetch_once(
                slot, req, index, self.config, self.guard, self.deadline, self.warm.disconnected
            )
            await self._release_page(slot, attempt.page_ok)
            return attempt
