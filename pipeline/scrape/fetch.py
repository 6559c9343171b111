"""One attempt at one page: navigate, wait for the DOM and a quiet network, read, cap.

A `PageSlot` is a browser page kept for several requests of one call (opening a page costs more
than navigating one), with its own in-flight request tracking for the quiet-window wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import html as html_lib
import re
import time
from dataclasses import dataclass
from typing import Any

from podfleet.pipeline.backoff import parse_retry_after_s
from podfleet.pipeline.config import ScrapeConfig
from podfleet.pipeline.scrape.egress import REFUSED_HEADER
from podfleet.pipeline.scrape.errors import describe_failure
from podfleet.pipeline.scrape.guard import AddressGuard, host_of
from podfleet.pipeline.scrape.models import PageRequest, PageResult

__all__ = ["QUIET_TRACKER", "Attempt", "PageSlot", "fetch_once", "inline_url"]

_LONG_REQUEST_MS = 10_000  # requests open longer (streams, long polls) don't block "quiet"
_POLL_S = 0.05
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)

# Installed in every document of a call's context (add_init_script, once per context): counts
# the page's fetch()/XHR in flight and notes the last network activity (resource timing entries,
# readiness changes), so the quiet-window wait is one in-page poll instead of an event sent to
# Python for every request. A page may break its own tracker; the render timeout still bounds it.
QUIET_TRACKER = """(() => {
  const key = Symbol.for('podfleet.quiet');
  if (window[key]) return;
  const inflight = new Map();
  let seq = 0, last = performance.now();
  const touch = () => { last = performance.now(); };
  const start = () => {
    const id = ++seq;
    inflight.set(id, performance.now());
    touch();
    return id;
  };
  const end = (id) => { if (inflight.delete(id)) touch(); };
  const realFetch = window.fetch;
  if (realFetch) {
    window.fetch = function (...args) {
      const id = start();
      try {
        const promise = realFetch.apply(this, args);
        promise.then(() => end(id), () => end(id));
        return promise;
      } catch (error) { end(id); throw error; }
    };
  }
  const realSend = window.XMLHttpRequest && XMLHttpRequest.prototype.send;
  if (realSend) {
    XMLHttpRequest.prototype.send = function (...args) {
      const id = start();
      this.addEventListener('loadend', () => end(id));
      try { return realSend.apply(this, args); } catch (error) { end(id); throw error; }
    };
  }
  try { new PerformanceObserver(touch).observe({type: 'resource'}); } catch (error) {}
  document.addEventListener('readystatechange', touch);
  const busy = (now, longMs) => {
    if (document.readyState !== 'complete') return true;
    for (const started of inflight.values()) if (now - started < longMs) return true;
    return false;
  };
  Object.defineProperty(window, key, {value: {
    // Resolves true once loaded with nothing in flight for windowMs, false after timeoutMs.
    // Timers in the page, no polling from outside: a few callbacks per page.
    whenQuiet(windowMs, longMs, timeoutMs) {
      const t0 = performance.now();
      return new Promise((resolve) => {
        const check = () => {
          const now = performance.now();
          if (!busy(now, longMs) && now - last >= windowMs) return resolve(true);
          if (now - t0 >= timeoutMs) return resolve(false);
          const idleIn = busy(now, longMs) ? 50 : windowMs - (now - last);
          setTimeout(check, Math.max(10, Math.min(idleIn, timeoutMs - (now - t0))));
        };
        check();
      });
    },
  }});
})();"""
_WHEN_QUIET = """([windowMs, longMs, timeoutMs]) => {
  const q = window[Symbol.for('podfleet.quiet')];
  if (q) return q.whenQuiet(windowMs, longMs, timeoutMs);
  return document.readyState === 'complete';  // no tracker (the page removed it): loaded is all
}"""


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


_CLOSE_TIMEOUT_S = 5.0


@dataclass
class PageSlot:
    """A page plus what its (few) event handlers observe.

    Only rare events are subscribed for the page's life: failed requests (to name the failed
    navigation hop) and crashes; nothing is sent to Python per request. The main document's
    Content-Length is checked when the navigation commits.
    """

    page: Any
    max_page_bytes: int
    inline_html: str | None = None
    too_large: int | None = None
    crashed: bool = False
    nav_url: str | None = None  # the last main-frame navigation request that failed

    def __post_init__(self) -> None:
        self.page.on("requestfailed", self._on_failed)
        self.page.on("crash", lambda _p: setattr(self, "crashed", True))

    def reset(self) -> None:
        self.too_large = None
        self.nav_url = None

    def _is_main_navigation(self, request: Any) -> bool:
        return request.is_navigation_request() and request.frame == self.page.main_frame

    def _on_failed(self, request: Any) -> None:
        with contextlib.suppress(Exception):
            if self._is_main_navigation(request):
                self.nav_url = request.url

    async def refuse_if_too_large(self, response: Any) -> bool:
        """At commit (headers in, body still coming): a declared Content-Length over the cap
        closes the page before the body is read."""
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_page_bytes:
            self.too_large = int(length)
            # bounded: closing while the body still streams in can stall (seen once in ~3 runs
            # for 60 s, the whole scrape budget); the page is not reused either way
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.page.close(), _CLOSE_TIMEOUT_S)
            return True
        return False

    async def serve_inline(self, route: Any) -> None:
        """While an inline source navigates: its main document is the HTML, no fetch."""
        try:
            if self.inline_html is not None and self._is_main_navigation(route.request):
                html, self.inline_html = self.inline_html, None
                await route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html)
            else:
                await route.continue_()
        except Exception:  # the page went away meanwhile
            pass

    async def wait_quiet(self, window_s: float, timeout_s: float) -> bool:
        """True once the page has loaded and no fetch/XHR or other request activity happened
        for `window_s`; False when `timeout_s` ran out first. One in-page call; again on the
        new document when the page navigates meanwhile."""
        deadline = time.monotonic() + timeout_s
        while (left_s := deadline - time.monotonic()) > 0:
            call = self.page.evaluate(
                _WHEN_QUIET, [round(window_s * 1000), _LONG_REQUEST_MS, round(left_s * 1000)]
            )
            try:  # the page's own timers may lag (a busy main thread): bounded from here too
                return bool(await asyncio.wait_for(call, left_s + 1.0))
            except TimeoutError:
                return False
            except Exception as exc:
                if "context was destroyed" not in str(exc) and "navigat" not in str(exc):
                    raise
                await asyncio.sleep(_POLL_S)  # a navigation replaced the document: wait again
        return False


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
        if inline:
            await page.route("**/*", slot.serve_inline)
        try:  # to commit first: the main document's headers, checked before its body is read
            response = await page.goto(target, wait_until="commit", timeout=nav_timeout_s * 1000)
            if response is not None and await slot.refuse_if_too_large(response):
                raise PageTooLarge(slot.too_large)
            left_s = max(0.05, t_nav + nav_timeout_s - time.monotonic())
            await page.wait_for_load_state(wait_until, timeout=left_s * 1000)
        finally:
            if inline and not page.is_closed():
                with contextlib.suppress(Exception):  # a page that failed is not reused
                    await page.unroute("**/*", slot.serve_inline)
        t_render = time.monotonic()
        result.timings_ms["navigate"] = round((t_render - t_nav) * 1000, 1)
        render_s = max(0.0, min(config.render_timeout_s, deadline - t_render))
        if config.wait == "quiet":
            quiet = await slot.wait_quiet(config.quiet_window_ms / 1000, render_s)
            if not quiet:
                result.warnings.append(
                    f"network never went quiet; page read after the render budget ({render_s:.1f}s)"
                )
        read_s = max(1.0, t_render + render_s - time.monotonic() + 5.0)
        html = await asyncio.wait_for(page.content(), read_s)
        result.timings_ms["render"] = round((time.monotonic() - t_render) * 1000, 1)
    except Exception as exc:
        slot.inline_html = None
        return _failed(result, exc, slot, guard, config, nav_timeout_s, browser_gone, t0)
    finally:
        slot.inline_html = None
    if page.url.startswith("chrome-error:"):  # a later (script) navigation failed
        why = guard.reason_for_url(slot.nav_url) if slot.nav_url else None
        result.error = why or f"the page navigated to {slot.nav_url}, which failed to load"
        result.timings_ms["total"] = round((time.monotonic() - t0) * 1000, 1)
        return Attempt(result, page_ok=False)
    if page.url != target and (why := guard.reason_for_url(page.url)):
        # a script or meta navigation the egress proxy refused (it answered with a 403 page)
        result.error = why
        result.timings_ms["total"] = round((time.monotonic() - t0) * 1000, 1)
        return Attempt(result, page_ok=False)
    match = _TITLE.search(html)
    title = html_lib.unescape(match.group(1)).strip() if match else ""
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
        result.error = guard.reason_for_url(response.url) or f"refused: {host} is not allowed"
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
