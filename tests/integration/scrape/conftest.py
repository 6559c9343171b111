"""Real Chromium against the loopback fixture site, one browser and one site per test session.

The scrape tests share one event loop (loop_scope="session") so the warm browser outlives a test,
as it outlives a job on a worker.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import pytest_asyncio
from podfleet.pipeline.config import ScrapeConfig
from podfleet.pipeline.resources import WarmResources

_REPO = str(Path(__file__).resolve().parents[3])
if _REPO not in sys.path:  # `pytest` (not `python -m pytest`) leaves the repo root off the path
    sys.path.insert(0, _REPO)

from tests.fixtures.site import FixtureSite  # noqa: E402


@pytest.fixture(scope="session")
def site():
    with FixtureSite() as running:
        yield running


@pytest.fixture
def config(chromium_path: str, site) -> ScrapeConfig:
    """Short budgets so the misbehaving pages finish fast; the fixture site's port allowed
    explicitly (every other loopback port stays refused)."""
    return ScrapeConfig(
        executable_path=chromium_path,
        allow_hosts=(f"127.0.0.1:{site.port}",),
        concurrency=6,
        navigation_timeout_s=4,
        render_timeout_s=3,
        retries=2,
        stage_timeout_s=60,
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def warm():
    """The session's worker resources: one Chromium for every test that uses it."""
    resources = WarmResources()
    yield resources
    await resources.close_all()
