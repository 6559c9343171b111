"""podfleet.testing's endpoint(): a worker command that cannot start fails fast with its log."""

from __future__ import annotations

import sys
import time

import pytest
from podfleet.testing import endpoint

pytestmark = pytest.mark.emulator


def test_a_crash_looping_worker_fails_fast_with_its_output(tmp_path) -> None:
    cmd = [sys.executable, "-c", "import sys; print('no handler.py here'); sys.exit(3)"]
    t0 = time.monotonic()
    with (
        pytest.raises(RuntimeError, match="crash-looping") as err,
        endpoint(cmd, cwd=tmp_path, workers=1, ready_timeout_s=120, restart_backoff_s=0.1),
    ):
        pass
    assert "no handler.py here" in str(err.value)
    assert time.monotonic() - t0 < 60  # not the ready timeout
