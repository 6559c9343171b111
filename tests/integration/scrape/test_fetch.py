"""fetch_pages against the loopback fixture site with real Chromium: what gets fetched, refused,
retried, bounded and capped — counted on the server side where it matters."""

from __future__ import annotations

import pytest
from podfleet.pipeline.resources import WarmResources
from podfleet.pipeline.scrape import PageRequest, fetch_pages

from tests.fixtures.site import HITS, PEAK

pytestmark = [pytest.mark.chromium, pytest.mark.asyncio(loop_scope="session")]


def reqs(site, *paths: str) -> list[PageRequest]:
    return [PageRequest(url=site.url(p)) for p in paths]


async def test_pages_rendered_in_order_with_scripts_run(site, config, warm) -> None:
    out = await fetch_pages(reqs(site, "/js-only/5", "/article/6"), config, warm)
    js, article = out
    assert js.ok and article.ok
    assert js.title == "Rendered story 5" and "Scripted marker 5." in js.html
    assert "Scripted paragraph 6." in article.html  # from an external deferred script
    assert "related 1</a>" in article.html  # from that script's fetch()
    assert js.status == 200 and js.final_url == site.url("/js-only/5")
    assert set(js.timings_ms) == {"navigate", "render", "total"}


@pytest.mark.parametrize("wait", ["networkidle", "load", "domcontentloaded"])
async def test_other_wait_modes(site, config, warm, wait) -> None:
    cfg = config.model_copy(update={"wait": wait})
    [page] = await fetch_pages(
        reqs(site, "/js-only/6" if wait == "networkidle" else "/article/6"), cfg, warm
    )
    assert page.ok and "navigate" in page.timings_ms
    if wait == "networkidle":
        assert page.title == "Rendered story 6"
    else:
        assert page.title.startswith("Article 6")


async def test_slow_page_times_out_alone(site, config, warm) -> None:
    cfg = config.model_copy(update={"navigation_timeout_s": 1.5})
    out = await fetch_pages(reqs(site, "/slow?s=6", "/article/1", "/article/2"), cfg, warm)
    assert "navigation timed out" in out[0].error and out[0].retryable
    assert out[1].ok and out[2].ok


async def test_404_not_retried(site, config, warm) -> None:
    before = HITS["/no-such-page-404"]
    [page] = await fetch_pages(reqs(site, "/no-such-page-404"), config, warm)
    assert page.error.startswith("HTTP 404") and page.status == 404
    assert not page.retryable and page.attempts == 1
    assert HITS["/no-such-page-404"] == before + 1


async def test_500_then_200_retried_to_success(site, config, warm) -> None:
    [page] = await fetch_pages(reqs(site, "/flaky/retry-ok?fails=1"), config, warm)
    assert page.ok, page.error
    assert page.title == "Recovered page retry-ok" and page.attempts == 2
    assert HITS["/flaky/retry-ok"] == 2


async def test_persistent_500_gives_up_after_retries(site, config, warm) -> None:
    cfg = config.model_copy(update={"retries": 1})
    [page] = await fetch_pages(reqs(site, "/flaky/always?fails=99"), cfg, warm)
    assert page.error.startswith("HTTP 500") and page.retryable
    assert HITS["/flaky/always"] == 2


async def test_429_backs_off_and_retries(site, config, warm) -> None:
    [page] = await fetch_pages(reqs(site, "/ratelimited/r1"), config, warm)
    assert page.ok and page.attempts == 2 and HITS["/ratelimited/r1"] == 2


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[fd00:ec2::254]/latest/",
        "http://10.0.0.7/admin",
        "http://192.168.1.1/",
        "https://172.16.0.1/",
    ],
)
async def test_redirect_to_private_or_metadata_refused(site, config, warm, target) -> None:
    path = f"/redirect?to={target}"
    before = HITS["/redirect"]
    [page] = await fetch_pages(reqs(site, path), config, warm)
    assert page.error and page.error.startswith("refused:"), page.error
    assert page.html is None and not page.retryable
    assert HITS["/redirect"] == before + 1  # the first hop was served; the second refused


async def test_script_navigation_to_metadata_refused(site, config, warm) -> None:
    path = "/js-redirect?to=http://169.254.169.254/latest/meta-data/"
    [page] = await fetch_pages(reqs(site, path), config, warm)
    assert page.error and "169.254.169.254 is a cloud metadata address" in page.error


async def test_private_subresources_refused_page_kept(site, config, warm) -> None:
    [page] = await fetch_pages(reqs(site, "/nosy"), config, warm)
    assert page.ok and page.title == "Nosy page"


async def test_loopback_refused_without_allow_list(site, config, warm) -> None:
    cfg = config.model_copy(update={"allow_hosts": ()})
    before = HITS["/article/3"]
    [page] = await fetch_pages(reqs(site, "/article/3"), cfg, warm)
    assert page.error == f"refused: 127.0.0.1 is a loopback address ({site.url('/article/3')})"
    assert HITS["/article/3"] == before  # never reached the server


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "data:text/html,<h1>hi</h1>", "chrome://settings"]
)
async def test_non_http_urls_refused(config, warm, url) -> None:
    [page] = await fetch_pages([PageRequest(url=url)], config, warm)
    assert page.error.startswith("refused:") and "only http and https" in page.error
    assert page.html is None


async def test_huge_page_capped(site, config, warm) -> None:
    # generous timeouts: parsing 6 MB on a loaded 2-core machine can take seconds
    cfg = config.model_copy(
        update={"max_page_bytes": 1_000_000, "navigation_timeout_s": 20, "render_timeout_s": 10}
    )
    streamed, declared = await fetch_pages(
        reqs(site, "/huge?mb=6", "/huge?mb=6&declared=1"), cfg, warm
    )
    assert streamed.ok and streamed.truncated
    assert len(streamed.html.encode()) <= 1_000_000 < streamed.html_bytes
    assert "cut to 1000000" in streamed.warnings[0]
    assert declared.error.startswith("refused: the page is ") and "SCRAPE_MAX_PAGE_BYTES" in (
        declared.error
    )


async def test_endless_pages_bounded(site, config, warm) -> None:
    cfg = config.model_copy(update={"render_timeout_s": 1.0, "navigation_timeout_s": 1.5})
    busy, hanging, fine = await fetch_pages(
        reqs(site, "/endless", "/hang", "/article/8"), cfg, warm
    )
    assert busy.ok and busy.title == "Endless page"
    assert "network never went quiet" in busy.warnings[0]
    assert "navigation timed out" in hanging.error
    assert fine.ok


async def test_whole_call_budget_bounds_everything(site, config, warm) -> None:
    cfg = config.model_copy(update={"navigation_timeout_s": 600, "render_timeout_s": 600})
    slow, fine = await fetch_pages(reqs(site, "/slow?s=30", "/article/9"), cfg, warm, budget_s=2)
    assert slow.error and slow.retryable and ("budget" in slow.error or "timed out" in slow.error)
    assert fine.ok


async def test_images_blocked_by_default_and_fetched_on_opt_out(site, config, warm) -> None:
    before = HITS["img"]
    [page] = await fetch_pages(reqs(site, "/images"), config, warm)
    assert page.ok and HITS["img"] == before
    cfg = config.model_copy(update={"block_resources": False})
    [page] = await fetch_pages(reqs(site, "/images"), cfg, warm)
    assert page.ok and HITS["img"] == before + 3


async def test_user_agent_setting_sent(site, config, warm) -> None:
    cfg = config.model_copy(update={"user_agent": "podfleet-test/9.9 (+loopback)"})
    [page] = await fetch_pages(reqs(site, "/ua"), cfg, warm)
    assert page.ok and HITS["ua:podfleet-test/9.9 (+loopback)"] == 1


async def test_download_refused(site, config, warm) -> None:
    [page] = await fetch_pages(reqs(site, "/download"), config, warm)
    assert page.error.startswith("refused: the URL starts a file download")


async def test_per_domain_concurrency_limit_seen_by_server(site, config, warm) -> None:
    cfg = config.model_copy(update={"per_domain_concurrency": 2, "concurrency": 6})
    # distinct URLs: Chromium's HTTP cache lets one request per URL through at a time
    paths = [f"/slow?s=0.3&key=per-domain&n={n}" for n in range(6)]
    out = await fetch_pages(reqs(site, *paths), cfg, warm)
    assert all(p.ok for p in out)
    assert PEAK["per-domain"] == 2


async def test_robots_txt_respected_and_fetched_once(site, config, warm) -> None:
    cfg = config.model_copy(update={"respect_robots": True})
    before = HITS["/robots.txt"], HITS["/private"]
    private, public, public2 = await fetch_pages(
        reqs(site, "/private/secret", "/article/10", "/article/11"), cfg, warm
    )
    assert private.error.startswith("refused: disallowed by") and "robots.txt" in private.error
    assert public.ok and public2.ok
    assert (HITS["/robots.txt"], HITS["/private"]) == (before[0] + 1, before[1])


async def test_inline_html_without_scripts_needs_no_browser(config) -> None:
    resources = WarmResources()
    html = "<html><head><title>Plain &amp; simple</title></head><body><p>text</p></body></html>"
    [page] = await fetch_pages([PageRequest(html=html, url="https://x.test/a")], config, resources)
    assert page.ok and page.html == html and page.title == "Plain & simple"
    assert page.final_url == "https://x.test/a"
    assert resources.peek("browser") is None  # nothing to run: Chromium not even launched


async def test_inline_html_rendered_without_fetching_its_url(site, config, warm) -> None:
    html = (
        "<html><head><title>Inline</title><script>"
        "document.addEventListener('DOMContentLoaded', () => {"
        " document.body.insertAdjacentHTML('beforeend', '<p>made by script</p>');"
        " document.body.insertAdjacentHTML('beforeend', '<p>' + new URL('rel', location).href);"
        "});</script></head><body><p>static</p></body></html>"
    )
    url = site.url("/inline-source/page")
    with_url, without_url = await fetch_pages(
        [PageRequest(url=url, html=html), PageRequest(html=html)], config, warm
    )
    assert with_url.ok and "made by script" in with_url.html
    assert site.url("/inline-source/rel") in with_url.html  # relative links resolve
    assert with_url.final_url == url and with_url.status is None
    assert HITS["/inline-source/page"] == 0
    assert without_url.ok and "made by script" in without_url.html
    assert without_url.final_url is None


async def test_quiet_wait_covers_slow_fetch_and_xhr_started_after_load(site, config, warm) -> None:
    """The in-page tracker: reading waits for fetch()/XHR in flight, even ones a timer starts
    after the load event, then for the quiet window."""
    html = (
        "<title>late</title><script>"
        "addEventListener('load', () => setTimeout(() => {"
        " fetch('/slow?s=0.8&key=late-fetch').then(r => r.text()).then(() =>"
        "  document.body.insertAdjacentHTML('beforeend', '<p>fetched late</p>'));"
        " const x = new XMLHttpRequest();"
        " x.onload = () => document.body.insertAdjacentHTML('beforeend', '<p>xhr done</p>');"
        " x.open('GET', '/slow?s=0.5&key=late-xhr'); x.send();"
        "}, 60));</script><body><p>start</p></body>"
    )
    [page] = await fetch_pages(
        [PageRequest(url=site.url("/inline-source/late"), html=html)], config, warm
    )
    assert page.ok and not page.warnings, page.warnings
    assert "fetched late" in page.html and "xhr done" in page.html


async def test_malformed_allow_list_entry_fails_naming_the_setting(config) -> None:
    from podfleet.pipeline.errors import StageError

    cfg = config.model_copy(update={"allow_hosts": ("127.0.0.1:http",)})
    with pytest.raises(StageError, match=r"SCRAPE_ALLOW_HOSTS entry '127\.0\.0\.1:http'"):
        await fetch_pages([PageRequest(url="http://127.0.0.1/")], cfg, WarmResources())
