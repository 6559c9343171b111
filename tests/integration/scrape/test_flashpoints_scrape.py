"""A flashpoints job whose sources are URLs of the fixture site, through the real handler."""

from __future__ import annotations

import pytest
from podfleet.entry import handler
from podfleet.pipeline.scrape.browser import RESOURCE_NAME
from podfleet.pipeline.store.db import dispose_engines
from podfleet.worker import RESOURCES

pytestmark = [pytest.mark.chromium, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture
def env(clean_env, monkeypatch, chromium_path, site):
    monkeypatch.setenv("CHROMIUM_PATH", chromium_path)
    monkeypatch.setenv("SCRAPE_ALLOW_HOSTS", f"127.0.0.1:{site.port}")
    monkeypatch.setenv("NAVIGATION_TIMEOUT_S", "5")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{clean_env / 'x.db'}")
    dispose_engines()
    yield
    dispose_engines()


async def test_js_rendered_sources_extracted_end_to_end(site, env) -> None:
    job = {
        "id": "scrape-e2e",
        "input": {
            "pipeline": "flashpoints",
            "date": "2026-11-23",
            "options": {"embed": False, "return_text": True, "min_words": 20},
            "items": [
                {
                    "id": "fp-js",
                    "title": "Scripted stories",
                    "sources": [
                        {"url": site.url("/js-only/41")},
                        {"url": site.url("/article/42")},
                        {"url": site.url("/gone-for-good")},
                    ],
                },
                {
                    "id": "fp-unsafe",
                    "title": "Only unsafe sources",
                    "sources": [
                        {"url": site.url("/redirect?to=http://169.254.169.254/latest/")},
                        {"url": "file:///etc/passwd"},
                    ],
                },
            ],
        },
    }
    try:
        out = await handler(job)
    finally:
        await RESOURCES.discard(RESOURCE_NAME)
    assert out["succeeded"] == 1 and out["items"] == 2, out  # one item fails, alone
    first, second = out["results"]
    js, article, gone = first["sources"]
    assert js["title"] == "Rendered story 41" and js["http_status"] == 200
    assert "Scripted marker 41." in js["text"]  # only present after the page's script ran
    assert "Scripted paragraph 42." in article["text"]
    assert gone["stage"] == "scrape" and gone["error"].startswith("HTTP 404")
    assert first["documents"] == 2 and first["failed_sources"] == 1
    assert second is None
    [error] = out["errors"]
    assert error["item_id"] == "fp-unsafe" and error["stage"] == "scrape"
    assert "169.254.169.254 is a cloud metadata address" in error["message"]


async def test_inline_source_with_a_browser_url_is_refused_naming_the_field(env) -> None:
    """Issue 12 defect 3: `{"url": "chrome://version/", "html": "<script>..."}` rendered
    Chromium's own page (its command line included) and stored it."""
    job = {
        "id": "scrape-chrome-inline",
        "input": {
            "pipeline": "flashpoints",
            "date": "2026-11-23",
            "options": {"embed": False, "return_text": True, "min_words": 0},
            "items": [
                {
                    "id": "fp-chrome",
                    "title": "Browser pages",
                    "sources": [
                        {"url": "chrome://version/", "html": "<script>1</script><p>a</p>"},
                        {"url": "view-source:http://127.0.0.1/", "html": "<script>2</script>"},
                        {"url": "file:///etc/passwd", "html": "<script>3</script><p>c</p>"},
                    ],
                }
            ],
        },
    }
    try:
        out = await handler(job)
    finally:
        await RESOURCES.discard(RESOURCE_NAME)
    text = repr(out)
    assert "Command Line" not in text and "Executable Path" not in text
    assert "root:x:0:0" not in text
    assert out["succeeded"] == 0
    [error] = out["errors"]
    assert error["item_id"] == "fp-chrome" and error["stage"] == "scrape"
    assert "refused: url 'chrome://version/' is a chrome: URL" in error["message"]
    assert "only http and https" in error["message"]
