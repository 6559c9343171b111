"""The warm browser's life: launched once and reused, relaunched after a crash, reported as a
fatal worker error when it keeps crashing, and a clear error when there is no Chromium."""

from __future__ import annotations

import asyncio
import contextlib

import psutil
import pytest
from podfleet.pipeline.errors import FatalWorkerError, StageError
from podfleet.pipeline.resources import WarmResources
from podfleet.pipeline.scrape import PageRequest, fetch_pages
from podfleet.pipeline.scrape.browser import RESOURCE_NAME

pytestmark = [pytest.mark.chromium, pytest.mark.asyncio(loop_scope="session")]


def kill_browser(resources: WarmResources) -> int:
    """SIGKILL every Chromium process of the warm browser (the driver stays up)."""
    pids = resources.peek(RESOURCE_NAME).browser_pids()
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    return len(pids)


async def test_browser_launched_once_and_reused(site, config) -> None:
    resources = WarmResources()
    try:
        first = await fetch_pages([PageRequest(url=site.url("/article/20"))], config, resources)
        browser = resources.peek(RESOURCE_NAME).browser
        second = await fetch_pages([PageRequest(url=site.url("/article/21"))], config, resources)
        assert first[0].ok and second[0].ok
        assert resources.peek(RESOURCE_NAME).browser is browser
        assert resources.created[RESOURCE_NAME] == 1
        # each call's context is closed after it; only the profile's own (offline) one stays
        assert browser.contexts == [resources.peek(RESOURCE_NAME).default_context]
    finally:
        await resources.close_all()


async def test_crashed_browser_relaunched(site, config) -> None:
    resources = WarmResources()
    try:
        await fetch_pages([PageRequest(url=site.url("/article/22"))], config, resources)
        assert kill_browser(resources) > 0
        [page] = await fetch_pages([PageRequest(url=site.url("/article/23"))], config, resources)
        assert page.ok, page.error
        assert resources.created[RESOURCE_NAME] == 2
    finally:
        await resources.close_all()


async def test_browser_crash_mid_call_relaunched_once(site, config) -> None:
    resources = WarmResources()
    try:
        await fetch_pages([PageRequest(url=site.url("/article/24"))], config, resources)
        urls = [site.url("/slow?s=1.5&key=crash-once")] * 3

        async def killer() -> None:
            await asyncio.sleep(0.7)
            kill_browser(resources)

        kill = asyncio.ensure_future(killer())
        pages = await fetch_pages([PageRequest(url=u) for u in urls], config, resources)
        await kill
        assert all(p.ok for p in pages), [p.error for p in pages]
        assert resources.created[RESOURCE_NAME] == 2
    finally:
        await resources.close_all()


async def test_repeated_crashes_are_fatal(site, config) -> None:
    resources = WarmResources()
    stop = asyncio.Event()

    async def keep_killing() -> None:
        while not stop.is_set():
            if resources.peek(RESOURCE_NAME) is not None:
                await asyncio.sleep(0.5)
                with contextlib.suppress(Exception):
                    kill_browser(resources)
            await asyncio.sleep(0.05)

    killer = asyncio.ensure_future(keep_killing())
    try:
        urls = [site.url("/slow?s=3&key=crash-loop")] * 2
        with pytest.raises(FatalWorkerError, match="crashed twice"):
            await fetch_pages([PageRequest(url=u) for u in urls], config, resources)
        assert resources.refresh_requested
    finally:
        stop.set()
        await killer
        await resources.close_all()


async def test_missing_executable_names_the_setting(config) -> None:
    cfg = config.model_copy(update={"executable_path": "/nonexistent/chromium"})
    with pytest.raises(StageError, match="CHROMIUM_PATH"):
        await fetch_pages([PageRequest(url="http://127.0.0.1:9/")], cfg, WarmResources())
