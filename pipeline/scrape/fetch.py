"""One attempt at one page: navigate, wait for the DOM and a quiet network, read, cap.

A `PageSlot` is a browser page kept for several requests of one call (opening a page costs more
than navigating one), with its own in-flight request tracking for the quiet-window wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from podfleet.pipeline.config import ScrapeConfig
from podfleet.pipeline.scrape.egress import REFUSED_HEADER
from podfleet.pipeline.scrape.errors import describe_failure
from podfleet.pipeline.scrape.guard import AddressGuard, host_of
from podfleet.pipeline.scrape.models import PageRequest, PageResult
from podfleet.pipeline.scrape.politeness import parse_retry_after_s

__all__ = ["Attempt", "PageSlot", "fetch_once", "inline_url"]

_LONG_REQUEST_S = 10.0  # requests open longer than this (streams, long polls) don't block "quiet"
_POLL_S = 0.02


def inline_url(index: int) -> str:
    """Address of inline HTML that came without a URL (a reserved name: never resolves)."""
    return f"http://inline-{index}.podfleet.invalid/"


@dataclass
class Attempt:
    result: PageResult
    retry: bool = False  # worth another attempt in this call
    retry_after_s: float | None = None  # from a 429/503 Retry-After
    rate_limited: bool = False
    page_ok: bool = True  # the page can serve the next request
    browser_lost: bool = False


@dataclass
class PageSlot:
    """A page plus what its event handlers observe."""

    page: Any
    max_page_bytes: int
    inflight: dict[Any, float] = field(default_factory=dict)
    last_change: float = field(default_factory=time.monotonic)
    inline_html: str | None = None
    too_large: int | None = None
    crashed: bool = False
    nav_url: str | None = None
    _closing: asyncio.Future | None = None

    def __post_init__(self) -> None:
        p = self.page
        p.on("request", self._on_request)
        p.on("requestfinished", self._on_done)
        p.on("requestfailed", self._on_done)
        p.on("response", self._on_response)
        p.on("crash", lambda _p: setattr(self, "crashed", True))

    def reset(self) -> None:
        self.inflight.clear()
        self.last_change = time.monotonic()
        self.too_large = None
        self.nav_url = None

    def _on_request(self, request: Any) -> None:
        if request.resource_type in ("eventsource", "websocket"):
            return
        self.inflight[request] = time.monotonic()
        self.last_change = time.monotonic()
        if request.is_navigation_request() and request.frame == self.page.main_frame:
            self.nav_url = request.url

    def _on_done(self, request: Any) -> None:
        if self.inflight.pop(request, None) is not None:
            self.last_change = time.monotonic()

    def _on_response(self, response: Any) -> None:
        request = response.request
        if not (request.is_navigation_request() and request.frame == self.page.main_frame):
            return
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_page_bytes:
            self.too_large = int(length)
            self._closing = asyncio.ensure_future(self._close_quietly())

    async def _close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            await self.page.close()

    def busy(self, now: float) -> bool:
        return any(now - started < _LONG_REQUEST_S for started in self.inflight.values())

    async def wait_quiet(self, window_s: float, deadline: float) -> bool:
        """True once no request has been in flight for `window_s`; False at the deadline."""
        while True:
            now = time.monotonic()
            if not self.busy(now) and now - self.last_change >= window_s:
                return True
            if now >= deadline:
                return False
            wait = window_s - (now - self.last_change) if not self.busy(now) else _POLL_S
            await asyncio.sleep(max(_POLL_S, min(wait, deadline - now)))


class PageTooLarge(Exception):
    """The main document declared a Content-Length over the cap (described by errors.py)."""


def _cap(html: str, max_bytes: int) -> tuple[str, int, bool]:
    data = html.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return html, len(data), False
    return data[:max_bytes].decode("utf-8", "ignore"), len(data), True


async def fetch_once(
    slot: PageSlot,
    req: PageRequest,
    index: int,
    config: ScrapeConfig,
    guard: AddressGuard,
    deadline: float,
    browser_gone: asyncio.Event,
) -> Attempt:
    """One navigation of `slot.page` to the request; never raises for the page's own failures."""
    page = slot.page
    slot.reset()
    t0 = time.monotonic()
    inline = req.html is not None
    target = (req.url or inline_url(index)) if inline else (req.url or "")
    result = PageResult(url=req.url)
    if inline:
        slot.inline_html = req.html
    nav_timeout_s = max(0.05, min(config.navigation_timeout_s, deadline - t0))
    wait_until = "domcontentloaded" if config.wait == "quiet" else config.wait
    t_nav = time.monotonic()
    response = None
    try:
        response = await page.goto(target, wait_until=wait_until, timeout=nav_timeout_s * 1000)
        if slot.too_large is not None:  # the body arrived before the page could be closed
            raise PageTooLarge(slot.too_large)
        t_render = time.monotonic()
        result.timings_ms["navigate"] = round((t_render - t_nav) * 1000, 1)
        render_deadline = min(t_render + config.render_timeout_s, deadline)
        if config.wait == "quiet":
            quiet = await slot.wait_quiet(config.quiet_window_ms / 1000, render_deadline)
            if not quiet:
                result.warnings.append(
                    f"network never went quiet; page read after the render budget "
                    f"({min(config.render_timeout_s, deadline - t_render):.1f}s)"
                )
        read_s = max(1.0, render_deadline - time.monotonic() + 5.0)
        html = await asyncio.wait_for(page.content(), read_s)
        title = await asyncio.wait_for(page.title(), read_s)
        result.timings_ms["render"] = round((time.monotonic() - t_render) * 1000, 1)
    except Exception as exc:
        slot.inline_html = None
        return _failed(result, exc, slot, guard, config, nav_timeout_s, browser_gone, t0)
    finally:
        slot.inline_html = None
    if page.url.startswith("chrome-error:"):  # a later (script) navigation failed
        host = host_of(slot.nav_url or "")
        why = guard.reason_for(host) if host else None
        result.error = why or f"the page navigated to {slot.nav_url}, which failed to load"
        result.timings_ms["total"] = round((time.monotonic() - t0) * 1000, 1)
        return Attempt(result, page_ok=False)
    result.final_url = page.url
    if inline and page.url == target:
        result.final_url = req.url  # None when the inline HTML came without an address
    result.title = title or None
    result.html, result.html_bytes, result.truncated = _cap(html, config.max_page_bytes)
    if result.truncated:
        result.warnings.append(
            f"rendered HTML of {result.html_bytes} bytes cut to {config.max_page_bytes} "
            "(SCRAPE_MAX_PAGE_BYTES)"
        )
    result.timings_ms["total"] = round((time.monotonic() - t0) * 1000, 1)
    if inline:
        return Attempt(result)
    return _judge_status(result, response, guard)


def _judge_status(result: PageResult, response: Any, guard: AddressGuard) -> Attempt:
    if response is None:
        return Attempt(result)
    status = response.status
    result.status = status
    headers = response.headers
    if status == 403 and headers.get(REFUSED_HEADER):
        host = host_of(response.url)
        result.error = guard.reason_for(host) or f"refused: {host} is not allowed"
        result.status = None  # the 403 came from our own egress proxy, not the site
        result.html = result.title = None
        return Attempt(result)
    if status < 400:
        return Attempt(result)
    reason = response.status_text or ""
    result.error = f"HTTP {status}{' ' + reason if reason else ''} from {response.url}"
    result.html = None
    if status == 429 or status >= 500:
        result.retryable = True
        retry_after = parse_retry_after_s(headers.get("retry-after"))
        return Attempt(result, retry=True, retry_after_s=retry_after, rate_limited=status == 429)
    return Attempt(result)  # 4xx: the answer will not change


def _failed(
    result: PageResult,
    exc: BaseException,
    slot: PageSlot,
    guard: AddressGuard,
    config: ScrapeConfig,
    nav_timeout_s: float,
    browser_gone: asyncio.Event,
    t0: float,
) -> Attempt:
    result.timings_ms["total"] = round((time.monotonic() - t0) * 1000, 1)
    failure = describe_failure(
        exc,
        nav_url=slot.nav_url or result.url,
        guard=guard,
        too_large=slot.too_large,
        max_page_bytes=config.max_page_bytes,
        crashed=slot.crashed,
        browser_gone=browser_gone.is_set(),
        navigation_timeout_s=nav_timeout_s,
        navigating="navigate" not in result.timings_ms,
    )
    result.error = failure.message
    result.retryable = failure.retryable
    return Attempt(
        result,
        retry=failure.retry_now,
        page_ok=False,
        browser_lost=failure.browser_lost,
    )
