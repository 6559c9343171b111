"""Emulators whose workers run the fixture handlers through podfleet's prompt worker loop."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from podfleet.emulator import Emulator, run_emulator

from tests.integration.emulator.helpers import config

LOOP_WORKER = Path(__file__).resolve().parent / "handlers" / "loop_worker.py"


def loop_worker_cmd(kind: str, *extra: str) -> list[str]:
    return [sys.executable, "-u", str(LOOP_WORKER), kind, "--loop", "prompt", *extra]


@pytest.fixture(scope="module")
def slow_emulator(tmp_path_factory) -> Iterator[Emulator]:
    """2 workers: slow_handler.py's handler in the prompt loop (same name as the emulator suite's
    fixture, so its tests, imported into this package, run against the prompt loop)."""
    tmp = tmp_path_factory.mktemp("loop-slow")
    cmd = loop_worker_cmd("slow")
    with run_emulator(config(tmp, workers=2, cmd=cmd, lost_after_s=2.5)) as emu:
        emu.wait_ready(60)
        yield emu


@pytest.fixture(scope="module")
def stream_emulator(tmp_path_factory) -> Iterator[Emulator]:
    """1 worker: stream_handler.py's async generator in the prompt loop."""
    tmp = tmp_path_factory.mktemp("loop-stream")
    with run_emulator(config(tmp, workers=1, cmd=loop_worker_cmd("stream"))) as emu:
        emu.wait_ready(60)
        yield emu
