"""Coordinator jobs on 4 emulated SDK workers under faults: every item still completes."""

from __future__ import annotations

import pytest
from fanout_helpers import synthetic_input, wait_for

pytestmark = pytest.mark.emulator

IDS = [f"it-{i:03d}" for i in range(12)]


def assert_all_items_done(final, n: int) -> dict:
    assert final.status == "COMPLETED", final.error
    out = final.output
    assert out["mode"] == "coordinator" and out["ok"] is True, out["errors"]
    assert [r["id"] for r in out["results"]] == [f"it-{i:03d}" for i in range(n)]
    assert "missing" not in out
    return out["fanout"]


def test_worker_killed_mid_chunk(fleet, run_coordinator):
    killed: dict[str, str] = {}

    def kill_a_sibling_worker(coordinator_id: str, before: set[str]) -> None:
        def running_sibling():
            mine = [j for j in fleet.jobs() if j["id"] not in before | {coordinator_id}]
            return next((j for j in mine if j["status"] == "IN_PROGRESS" and j["worker_id"]), None)

        job = wait_for(running_sibling, 60, "a sibling running")
        killed["job"] = job["id"]
        killed["worker"] = fleet.kill_worker(job["worker_id"])

    final, siblings = run_coordinator(fleet, synthetic_input(12, 1.0), during=kill_a_sibling_worker)
    fan = assert_all_items_done(final, 12)
    assert fan["retries"] >= 1
    victim = next(s for s in siblings if s["id"] == killed["job"])
    assert victim["status"] == "FAILED"  # max_job_retries=0: the coordinator's retry saved it
    worker = next(w for w in fleet.workers() if w["id"] == killed["worker"])
    assert worker["restarts"] >= 1


def test_every_sibling_fails_twice_before_succeeding(fleet, run_coordinator):
    final, siblings = run_coordinator(fleet, synthetic_input(12, 0.2, fail_job_attempts=2))
    fan = assert_all_items_done(final, 12)
    assert fan["retries"] == 2 * fan["chunks"]  # local runs count attempts the same way
    failed = [s for s in siblings if s["status"] == "FAILED"]
    assert failed and all("attempt" in str(s["error"]) for s in failed)
    assert fan["chunks_failed"] == 0


def test_endpoint_capped_at_the_coordinators_worker_still_completes(fleet, run_coordinator):
    fleet.faults.max_workers = 1  # the coordinator holds the only worker
    final, siblings = run_coordinator(fleet, synthetic_input(8, 0.3))
    fan = assert_all_items_done(final, 8)
    assert fan["chunks_local"] == fan["chunks"] and fan["taken_back"] >= 1
    assert siblings and all(s["status"] == "CANCELLED" for s in siblings)
    assert fan["cancelled"] == len(siblings)


def test_429_storms_on_run_and_status(fleet, run_coordinator):
    fleet.faults.api_error_routes = ["run", "status"]
    fleet.faults.api_error_statuses = [429]
    fleet.faults.api_error_rate = 0.3
    final, siblings = run_coordinator(fleet, synthetic_input(16, 0.2))
    fan = assert_all_items_done(final, 16)
    assert fan["siblings_submitted"] >= 1
    assert all(s["status"] in ("COMPLETED", "CANCELLED") for s in siblings)
