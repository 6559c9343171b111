"""The fault campaign's emulators: real SDK worker processes running our handler.py.

`fleet`: 4 workers for the storm, kill and throttle scenarios (faults reset after each test).
`misconfigured`: a 1-worker endpoint whose workers hold a wrong API key or point at an API that
is not there, so a coordinator job there can only fall back to local work."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

API_KEY = "campaign-key-0123456789"
WORKER_ENV = {
    "INFER_FITNESS_CHECK": "false",  # synthetic jobs only: no model at start-up
    "STATUS_POLL_INTERVAL_S": "0.2",
    "PICKUP_TIMEOUT_S": "5",
    "SIBLING_MAX_RETRIES": "2",
    "LOG_LEVEL": "INFO",
}


def _config(home: Path, workers: int, **worker_env: str) -> Any:
    from podfleet.emulator import EmulatorConfig

    return EmulatorConfig(
        workers=workers,
        api_key=API_KEY,
        max_job_retries=0,  # a job whose worker died is FAILED: the coordinator must save it
        lost_after_s=10,
        restart_backoff_s=0.2,
        shutdown_grace_s=10,
        worker_log_path=home / "workers.log",
        worker_env={"DATABASE_URL": f"sqlite:///{home}/faults.db", **WORKER_ENV, **worker_env},
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from podfleet.emulator import run_emulator

    home = tmp_path_factory.mktemp("faults-fleet")
    with run_emulator(_config(home, 4)) as emu:
        emu.wait_ready(120)
        emu.log_path = home / "workers.log"
        yield emu


@pytest.fixture(autouse=True)
def _reset_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "fleet" in request.fixturenames:
        emu = request.getfixturevalue("fleet")
        emu.reset_faults()
        emu.wait_idle(90)
        emu.wait_ready(60)


@pytest.fixture
def misconfigured(tmp_path: Path) -> Callable[..., Any]:
    """misconfigured(**worker_env): a context manager giving a 1-worker emulator."""
    from podfleet.emulator import run_emulator

    @contextmanager
    def start(**worker_env: str) -> Iterator[Any]:
        with run_emulator(_config(tmp_path, 1, **worker_env)) as emu:
            emu.wait_ready(120)
            emu.log_path = tmp_path / "workers.log"
            yield emu

    return start
