"""A deadline (REQUEST_TIMEOUT) shorter than the work: siblings cancelled, output partial."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fanout_helpers import synthetic_input

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def short_deadline_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from podfleet.emulator import EmulatorConfig, run_emulator

    home = tmp_path_factory.mktemp("deadline")
    cfg = EmulatorConfig(
        workers=2,
        worker_log_path=home / "workers.log",
        worker_env={"REQUEST_TIMEOUT": "4", "STATUS_POLL_INTERVAL_S": "0.2"},
    )
    with run_emulator(cfg) as emu:
        emu.wait_ready(120)
        yield emu


def test_deadline_cancels_outstanding_siblings(short_deadline_fleet, run_coordinator):
    emu = short_deadline_fleet
    payload = synthetic_input(16, 1.0, workers=2)  # 16 s of work, 2 workers, 4 s deadline
    final, siblings = run_coordinator(emu, payload)

    assert final.status == "COMPLETED", final.error
    out = final.output
    assert out["ok"] is False and out["missing"]
    ids = [i["id"] for i in payload["items"]]
    done = [r["id"] for r in out["results"] if r]
    errored = {e["item_id"] for e in out["errors"]}
    assert set(out["missing"]) <= errored and set(done) | errored == set(ids)
    assert out["succeeded"] + len(out["missing"]) == len(ids)
    assert all(e["message"] == "no result before the job deadline" for e in out["errors"])
    # Siblings know the job's deadline (sibling.deadline_at): one running at it ends itself
    # (COMPLETED, its unfinished items failed at the deadline) unless the coordinator's cancel
    # comes first. None is left running or queued either way.
    assert siblings and {s["status"] for s in siblings} <= {"CANCELLED", "COMPLETED"}
    cancelled = [s for s in siblings if s["status"] == "CANCELLED"]
    assert out["fanout"]["cancelled"] >= len(cancelled)
    for sib in siblings:
        if sib["status"] == "COMPLETED":
            messages = {e["message"] for e in sib["output"]["errors"]}
            assert messages <= {"job deadline reached"}, messages
