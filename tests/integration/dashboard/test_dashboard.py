"""The emulator's dashboard in real Chromium (Playwright): live worker states and a fan-out tree.

One emulator with 3 real SDK workers running our `python handler.py`; the page is opened once and
never reloaded, so everything it shows arrived over server-sent events. A screenshot is kept in
$PODFLEET_ARTIFACTS_DIR (default build/test-artifacts/) as dashboard.png.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from podfleet.emulator import EmulatorConfig, run_emulator

pytestmark = [pytest.mark.emulator, pytest.mark.chromium]

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = Path(os.environ.get("PODFLEET_ARTIFACTS_DIR", REPO / "build" / "test-artifacts"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    home = tmp_path_factory.mktemp("dash")
    cfg = EmulatorConfig(
        endpoint_id="dash-ep",
        workers=3,
        worker_log_path=home / "workers.log",
        worker_env={
            "DATABASE_URL": f"sqlite:///{home}/dash.db",
            "INFER_FITNESS_CHECK": "false",
            "STATUS_POLL_INTERVAL_S": "0.2",
        },
        shutdown_grace_s=10,
    )
    with run_emulator(cfg) as running:
        running.wait_ready(120)
        yield running


@pytest.fixture(scope="module")
def page(emu: Any, chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.goto(emu.dashboard_url)
        tab.wait_for_selector('[data-testid="connection"]:text("live")', timeout=15_000)
        yield tab
        browser.close()


def _submit(emu: Any, payload: dict[str, Any]) -> str:
    r = httpx.post(f"{emu.url}/run", json={"input": payload}, timeout=30)
    r.raise_for_status()
    return r.json()["id"]


def _worker_state(page: Any, worker_id: str) -> str:
    return page.get_attribute(f'tr[data-worker-id="{worker_id}"]', "data-state")


def test_a_worker_goes_idle_running_idle_on_the_page(emu: Any, page: Any) -> None:
    page.wait_for_selector('tr[data-worker-id][data-state="idle"]', timeout=15_000)
    snapshots_before = page.evaluate("window.__podfleetSnapshots")
    job_id = _submit(
        emu,
        {"mode": "worker", "pipeline": "synthetic", "items": [{"id": "one", "duration_s": 2.5}]},
    )
    running = page.wait_for_selector('tr[data-worker-id][data-state="running"]', timeout=15_000)
    worker_id = running.get_attribute("data-worker-id")
    assert job_id[:8] in running.inner_text()  # its current job is shown
    job_row = f'#jobs tr[data-job-id="{job_id}"]'
    page.wait_for_selector(f'{job_row}[data-status="IN_PROGRESS"]', timeout=10_000)
    page.wait_for_selector(f'{job_row}[data-status="COMPLETED"]', timeout=30_000)
    page.wait_for_selector(f'tr[data-worker-id="{worker_id}"][data-state="idle"]', timeout=15_000)
    assert _worker_state(page, worker_id) == "idle"
    # the page was updated by events, not reloaded
    assert page.evaluate("window.__podfleetSnapshots") > snapshots_before
    cells = page.inner_text(job_row)
    assert worker_id in cells and " s" in cells  # worker, delay and execution time


def test_a_fanout_shows_its_siblings_as_they_run(emu: Any, page: Any) -> None:
    items = [{"id": f"it-{i}", "duration_s": 1.5} for i in range(6)]
    coordinator = _submit(
        emu,
        {"mode": "coordinator", "pipeline": "synthetic", "items": items, "workers": 3},
    )
    siblings = f'#jobs tr[data-parent-id="{coordinator}"]'
    page.wait_for_selector(f'{siblings}[data-status="IN_PROGRESS"]', timeout=30_000)
    assert page.locator(siblings).count() >= 1
    page.wait_for_selector(
        f'#jobs tr[data-job-id="{coordinator}"][data-status="IN_PROGRESS"]', timeout=5_000
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    page.wait_for_selector(
        f'#jobs tr[data-job-id="{coordinator}"][data-status="COMPLETED"]', timeout=90_000
    )
    statuses = page.eval_on_selector_all(siblings, "rows => rows.map(r => r.dataset.status)")
    assert statuses and all(s == "COMPLETED" for s in statuses)
    # the tree: siblings are listed right under their coordinator
    order = page.eval_on_selector_all(
        "#jobs tbody tr", "rows => rows.map(r => r.dataset.parentId || r.dataset.jobId)"
    )
    first = order.index(coordinator)
    assert order[first + 1 : first + 1 + len(statuses)] == [coordinator] * len(statuses)
    billed = float(page.inner_text('[data-testid="billed"] b'))
    assert billed > 0
    # requests/s over the last 10 s (pings, takes, status polls): the emulator's request counters
    assert float(page.inner_text('[data-testid="request-rate"] b')) > 0
