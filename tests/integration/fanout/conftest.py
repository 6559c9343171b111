"""End-to-end fan-out (issue 13) against the RunPod emulator with real SDK worker processes.

`fleet`: 3 workers sharing one SQLite database (the chunk ledger), fixed chunks of 3 items, a
job whose worker died re-queued once (as RunPod does), for the resume, duplicate and stream
tests; faults are reset after each test. The rolling-release and scale tests start their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from e2e_helpers import db_url_of, emulator_config


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from podfleet.emulator import run_emulator

    home = tmp_path_factory.mktemp("fanout-fleet")
    cfg = emulator_config(home, 3, worker_env={"CHUNK_SIZE": "3", "ITEMS_FROM_ROOTS": str(home)})
    with run_emulator(cfg) as emu:
        emu.wait_ready(120)
        emu.db_url = db_url_of(home)
        emu.log_path = home / "workers.log"
        emu.home = home
        yield emu


@pytest.fixture(autouse=True)
def _reset_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "fleet" in request.fixturenames:
        emu = request.getfixturevalue("fleet")
        emu.reset_faults()
        emu.wait_idle(90)
        emu.wait_ready(90)
