"""Fixtures for the emulator tests: running emulators (real SDK worker processes) and clients."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from podfleet.emulator import Emulator, run_emulator

from tests.integration.emulator.helpers import FIXTURE_HANDLERS, config


@pytest.fixture(scope="module")
def handler_emulator(tmp_path_factory) -> Iterator[Emulator]:
    """4 workers running our unmodified `python handler.py`."""
    tmp = tmp_path_factory.mktemp("emu-handler")
    with run_emulator(config(tmp, workers=4)) as emu:
        emu.wait_ready(60)
        yield emu


@pytest.fixture(scope="module")
def slow_emulator(tmp_path_factory) -> Iterator[Emulator]:
    """2 workers running tests/fixtures/handlers/slow_handler.py (cancellable async handler)."""
    tmp = tmp_path_factory.mktemp("emu-slow")
    cmd = [sys.executable, "-u", str(FIXTURE_HANDLERS / "slow_handler.py")]
    with run_emulator(config(tmp, workers=2, cmd=cmd, lost_after_s=2.5)) as emu:
        emu.wait_ready(60)
        yield emu


@pytest.fixture(scope="module")
def stream_emulator(tmp_path_factory) -> Iterator[Emulator]:
    """1 worker running tests/fixtures/handlers/stream_handler.py (async generator)."""
    tmp = tmp_path_factory.mktemp("emu-stream")
    cmd = [sys.executable, "-u", str(FIXTURE_HANDLERS / "stream_handler.py")]
    with run_emulator(config(tmp, workers=1, cmd=cmd)) as emu:
        emu.wait_ready(60)
        yield emu
