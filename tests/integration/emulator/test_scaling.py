"""An emulated endpoint that scales: workersMin/workersMax, cold start, scale up with the queue,
idle timeout down to zero, and billed worker-seconds as RunPod bills them (real processes)."""

from __future__ import annotations

import sys
import time

import pytest
from podfleet.emulator import run_emulator

from tests.integration.emulator.helpers import FIXTURE_HANDLERS, client_for, config

pytestmark = pytest.mark.emulator

SLOW = [sys.executable, "-u", str(FIXTURE_HANDLERS / "slow_handler.py")]


def test_scales_up_with_the_queue_and_down_to_zero_and_bills_it(tmp_path) -> None:
    cfg = config(tmp_path, workers=3, cmd=SLOW, workers_min=0, idle_timeout_s=1.5)
    cfg.faults.cold_start_s = 0.5
    with run_emulator(cfg) as emu, client_for(emu) as c:
        assert emu.workers_listing()["summary"]["total"] == 0  # scaled to zero at start
        assert emu.billing()["workerSeconds"] == 0
        seen: set[str] = set()

        def record(ws) -> bool:
            seen.update(w["state"] for w in ws)
            return sum(w["state"] == "running" for w in ws) == 3

        ids = [c.post("/run", json={"input": {"sleep_s": 2}}).json()["id"] for _ in range(3)]
        emu.wait_workers(record, 60)  # one worker per queued job
        assert "initializing" in seen  # each new worker started cold before taking its job
        for job_id in ids:
            assert emu.wait_job(job_id, timeout_s=30)["status"] == "COMPLETED"
        deadline = time.monotonic() + 30
        while emu.workers_listing()["summary"]["total"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert emu.workers_listing()["summary"]["total"] == 0  # idle timeout: back to zero
        bill = emu.billing()
        assert bill["runningSeconds"] >= 3 * 2 * 0.9
        assert bill["idleSeconds"] >= 3 * cfg.idle_timeout_s * 0.9  # idle until the timeout
        assert bill["workerSeconds"] == pytest.approx(
            bill["runningSeconds"] + bill["idleSeconds"], abs=0.01
        )
        time.sleep(0.5)
        assert emu.billing()["workerSeconds"] == bill["workerSeconds"]  # nothing runs: no cost
        # a new job starts a worker again
        again = c.post("/run", json={"input": {"sleep_s": 0, "echo": "back"}}).json()["id"]
        assert emu.wait_job(again, timeout_s=60)["output"] == {"slept_s": 0, "echo": "back"}


def test_workers_min_stay_up_and_the_cap_throttles(tmp_path) -> None:
    cfg = config(tmp_path, workers=2, cmd=SLOW, workers_min=1, idle_timeout_s=0.5)
    with run_emulator(cfg) as emu, client_for(emu) as c:
        emu.wait_ready(60, count=1)
        # long enough that the second worker's cold start (slow on a loaded machine) ends
        # before the first worker is free to take the second job itself
        ids = [c.post("/run", json={"input": {"sleep_s": 12}}).json()["id"] for _ in range(2)]
        emu.wait_health(lambda h: h["workers"]["running"] == 2, 60)
        for job_id in ids:
            emu.wait_job(job_id, timeout_s=60)
        emu.wait_until(lambda: len(emu._state.workers_info()) == 1, 30)
        [left] = emu.workers()
        assert left["id"] == "worker-0" and left["state"] == "idle"  # the minimum stays up
        emu.faults.max_workers = 0
        emu.wait_health(lambda h: h["workers"]["throttled"] == 1, 10)
