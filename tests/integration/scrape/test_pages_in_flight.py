"""Pages of one slow host are fetched side by side through the egress proxy.

Regression: with Chromium's HTTP cache on, requests for one URL wait for each other (its per-entry
cache lock), so a stylesheet or script every page of a site shares, sent without caching headers,
was fetched by one page at a time across the whole call — at 300 ms a request one host gave
2.4 pages/s whatever the concurrency (docs/scraping.md). The site's PEAK counter sees how many
requests for a key were in flight at once.
"""

from __future__ import annotations

import pytest
from podfleet.pipeline.scrape import PageRequest, fetch_pages

from tests.fixtures.site import HITS, PEAK

pytestmark = [pytest.mark.chromium, pytest.mark.asyncio(loop_scope="session")]

_PAGES = 6  # Chromium opens at most 6 HTTP/1.1 connections per host


def _config(config):
    return config.model_copy(
        update={"concurrency": _PAGES, "per_domain_concurrency": _PAGES, "navigation_timeout_s": 8}
    )


async def test_distinct_pages_of_one_slow_host_in_flight_together(site, config, warm) -> None:
    paths = [f"/slow?s=2&key=one-host&n={n}" for n in range(_PAGES)]
    out = await fetch_pages([PageRequest(url=site.url(p)) for p in paths], _config(config), warm)
    assert [p.error for p in out] == [None] * _PAGES
    assert PEAK["one-host"] >= 3, PEAK["one-host"]


async def test_one_url_shared_by_pages_not_fetched_one_page_at_a_time(site, config, warm) -> None:
    """Every page asks for the same uncacheable URL (as pages share a site's script): the
    requests overlap instead of queueing behind each other in the browser's cache."""
    before = HITS["/slow"]
    url = site.url("/slow?s=2&key=shared-url")
    out = await fetch_pages([PageRequest(url=url) for _ in range(_PAGES)], _config(config), warm)
    assert PEAK["shared-url"] >= 3, PEAK["shared-url"]  # 1 when queued in the cache
    assert [p.error for p in out] == [None] * _PAGES
    assert HITS["/slow"] - before == _PAGES  # each page fetched it (nothing served from a cache)
