"""The coordinator against the RunPod emulator with real SDK worker processes.

One 4-worker emulator serves the whole package (it takes ~20 s to start four workers on two
cores); its workers share one SQLite file. Faults are reset after every test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fanout_helpers import client_for
from podfleet.api import JobState


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """4 emulated workers; a job whose worker dies is failed (no re-queue), so the coordinator's
    own retry is what saves it."""
    from podfleet.emulator import EmulatorConfig, run_emulator

    home = tmp_path_factory.mktemp("fleet")
    db_url = f"sqlite:///{home}/fleet.db"
    cfg = EmulatorConfig(
        workers=4,
        max_job_retries=0,
        lost_after_s=30,
        worker_log_path=home / "workers.log",
        worker_env={
            "DATABASE_URL": db_url,
            "STATUS_POLL_INTERVAL_S": "0.2",
            "PICKUP_TIMEOUT_S": "5",
            "SIBLING_MAX_RETRIES": "2",
            "LOG_LEVEL": "INFO",
        },
    )
    with run_emulator(cfg) as emu:
        emu.wait_ready(120)
        emu.db_url = db_url
        yield emu


@pytest.fixture(autouse=True)
def _reset_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "fleet" in request.fixturenames:
        emu = request.getfixturevalue("fleet")
        emu.reset_faults()
        emu.wait_idle(60)


@pytest.fixture
def run_coordinator() -> Callable[..., tuple[JobState, list[dict[str, Any]]]]:
    """Submit a coordinator job, wait for it; returns its final state and its siblings' infos."""

    def run(
        emu: Any,
        payload: dict,
        *,
        timeout_s: float = 150,
        during: Callable[[str, set[str]], None] | None = None,
    ) -> tuple[JobState, list[dict[str, Any]]]:
        before = {j["id"] for j in emu.jobs()}
        with client_for(emu) as client:
            job = client.run(payload)
            if during is not None:
                during(job.id, before)
            final = client.wait(job.id, timeout_s=timeout_s, interval_s=0.5)
        emu.wait_idle(60)
        siblings = [j for j in emu.jobs() if j["id"] not in before and j["id"] != job.id]
        return final, siblings

    return run
