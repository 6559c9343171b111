"""The scraping stage's library: fetch `{url}` sources and render inline `{html}` with Playwright.

`fetch_pages` runs one job's pages in a fresh context of the process's warm Chromium, in parallel
up to a bounded concurrency, behind an address guard; see docs/scraping.md.
"""

from __future__ import annotations

import asyncio
import html as html_lib
import re
import time

from loguru import logger
from podfleet.pipeline.config import ScrapeConfig
from podfleet.pipeline.errors import FatalWorkerError, StageError
from podfleet.pipeline.resources import WarmResources
from podfleet.pipeline.scrape.browser import get_browser, relaunch_browser
from podfleet.pipeline.scrape.egress import EgressProxy
from podfleet.pipeline.scrape.guard import AddressGuard, Resolver
from podfleet.pipeline.scrape.models import PageRequest, PageResult
from podfleet.pipeline.scrape.politeness import DomainGate, RobotsCache
from podfleet.pipeline.scrape.session import BrowserLost, ScrapeSession

__all__ = ["PageRequest", "PageResult", "default_concurrency", "fetch_pages"]

_PAGE_MEMORY_BYTES = 200 * 1024 * 1024  # a rendered page's share of memory, roughly
_MAX_CONCURRENCY = 32
_GRACE_S = 5.0  # past the budget, how long cancelled pages get to wind down
# Inline HTML with none of these has nothing to run: it is handed on as it is, no browser needed.
_ACTIVE_HTML = re.compile(r"<script|<iframe|<frame|<object|<embed|\son[a-z]+\s*=", re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


def _static_inline(req: PageRequest, max_page_bytes: int) -> PageResult:
    """Inline HTML without scripts: rendering it would change nothing that extraction reads."""
    text = req.html or ""
    match = _TITLE.search(text)
    title = html_lib.unescape(match.group(1)).strip() if match else None
    data = text.encode("utf-8", "surrogatepass")
    result = PageResult(
        url=req.url,
        final_url=req.url,
        title=title or None,
        html=text,
        html_bytes=len(data),
        attempts=1,
        timings_ms={"total": 0.0},
    )
    if len(data) > max_page_bytes:
        result.html = data[:max_page_bytes].decode("utf-8", "ignore")
        result.truncated = True
        result.warnings.append(
            f"inline HTML of {len(data)} bytes cut to {max_page_bytes} (SCRAPE_MAX_PAGE_BYTES)"
        )
    return result


def default_concurrency() -> int:
    """Pages in parallel when SCRAPE_CONCURRENCY=0: what memory allows, at most 4 per core."""
    import os

    import psutil

    by_memory = int(psutil.virtual_memory().available // _PAGE_MEMORY_BYTES)
    by_cpu = 4 * (os.cpu_count() or 1)
    return max(1, min(by_memory, by_cpu, _MAX_CONCURRENCY))


def _budget_s(config: ScrapeConfig, budget_s: float | None) -> float:
    """The caller's budget (a stage passes SCRAPE_TIMEOUT_S already applied against the job's
    deadline: `RunContext.remaining_s`), or the stage budget alone when it gives none."""
    return max(0.0, config.stage_timeout_s if budget_s is None else budget_s)


async def fetch_pages(
    requests: list[PageRequest],
    config: ScrapeConfig,
    resources: WarmResources,
    *,
    budget_s: float | None = None,
    resolver: Resolver | None = None,
) -> list[PageResult]:
    """One result per request, same order; a failing page fails only its own result.

    `budget_s`: seconds for the whole call (default: `config.stage_timeout_s`).
    `resolver` replaces the system's name resolution for the address checks (tests; a
    deployment with its own DNS policy). Every connection goes to addresses it returned.

    Raises `FatalWorkerError` when the browser crashes again after one relaunch.
    """
    t0 = time.monotonic()
    deadline = t0 + _budget_s(config, budget_s)
    results: list[PageResult | None] = [None] * len(requests)
    try:
        guard = AddressGuard(config.allow_hosts, resolver)
    except ValueError as exc:  # a malformed SCRAPE_ALLOW_HOSTS entry: every page would fail
        raise StageError(str(exc)) from exc
    pending: list[int] = []
    for i, req in enumerate(requests):
        if req.html is None and req.url is None:
            results[i] = PageResult(error="a source needs a url or html")
        elif req.url is not None and (refusal := guard.scheme_refusal(req.url)):
            # inline HTML too: its url is the page's address (chrome://, data:, file: would
            # make Chromium render its own page or a local file instead of the HTML)
            results[i] = PageResult(url=req.url, error=refusal)
        elif req.html is not None and not _ACTIVE_HTML.search(req.html):
            results[i] = _static_inline(req, config.max_page_bytes)
        else:
            pending.append(i)
    if not pending:
        return [r for r in results if r is not None]

    concurrency = config.concurrency or default_concurrency()
    proxy = EgressProxy(guard, connect_timeout_s=min(30.0, config.navigation_timeout_s))
    await proxy.start()
    gate = DomainGate(config.per_domain_concurrency)
    robots = (
        RobotsCache(config.user_agent, proxy.server_url, min(30.0, config.navigation_timeout_s))
        if config.respect_robots
        else None
    )
    try:
        for launch in range(2):
            warm = await (
                get_browser(resources, config)
                if launch == 0
                else relaunch_browser(resources, config)
            )
            session = ScrapeSession(warm, config, guard, proxy, gate, robots, concurrency, deadline)
            await _run(session, requests, pending, results)
            if not session.lost:
                break
            if launch == 1:
                resources.refresh_requested = True
                raise FatalWorkerError(
                    f"Chromium crashed twice in one scrape call ({len(session.lost)} pages lost)"
                )
            logger.warning(
                "Chromium crashed or disconnected; relaunching once for {} pages",
                len(session.lost),
            )
            pending = sorted(session.lost)
    finally:
        await proxy.close()
    done = [r for r in results if r is not None]
    logger.debug(
        "fetched {} pages ({} failed) in {:.2f}s with concurrency {}",
        len(done),
        sum(1 for r in done if not r.ok),
        time.monotonic() - t0,
        concurrency,
    )
    return [r or PageResult(error="not fetched") for r in results]


async def _run(
    session: ScrapeSession,
    requests: list[PageRequest],
    pending: list[int],
    results: list[PageResult | None],
) -> None:
    """Fetch `pending` in `session`; pages still running at the deadline fail as timed out."""
    try:
        await session.open()
    except Exception as exc:  # the browser died between its health check and now
        if not (
            isinstance(exc, BrowserLost | TimeoutError)
            or "closed" in str(exc)
            or not session.warm.browser.is_connected()
        ):
            raise
        session.lost.update(pending)
        return
    tasks: dict[asyncio.Future, int] = {}
    try:
        tasks = {asyncio.ensure_future(session.fetch(i, requests[i])): i for i in pending}
        remaining_s = max(0.0, session.deadline - time.monotonic())
        _done, late = await asyncio.wait(tasks, timeout=remaining_s + _GRACE_S)
        for task in late:
            task.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)
        for task, i in tasks.items():
            if task in late or task.cancelled():
                results[i] = PageResult(
                    url=requests[i].url,
                    error="scrape budget (SCRAPE_TIMEOUT_S or the job deadline) ran out "
                    "before this page finished",
                    retryable=True,
                )
            elif task.exception() is not None:
                failure = task.exception()
                results[i] = PageResult(
                    url=requests[i].url,
                    error=f"{type(failure).__name__}: {failure}",
                    retryable=True,
                )
            elif task.result() is not None:
                results[i] = task.result()
    finally:
        unfinished = [t for t in tasks if not t.done()]
        for task in unfinished:  # we were cancelled ourselves
            task.cancel()
        if unfinished:
            await asyncio.gather(*unfinished, return_exceptions=True)
        await session.close()
