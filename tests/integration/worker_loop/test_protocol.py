"""The prompt worker loop speaks the SDK's protocol: the emulator suite's fixture-handler tests
(stream, cancel, execution timeout, progress, webhook on failure, lost worker, refresh), imported
here, run against workers in the prompt loop (this package's conftest), plus concurrency with
`concurrency_modifier`, SIGTERM drain, and a take in flight at SIGTERM."""

from __future__ import annotations

import os
import signal
import time

import pytest
from podfleet.emulator import run_emulator

from tests.integration.emulator.helpers import client_for, config
from tests.integration.emulator.test_fixture_workers import (  # noqa: F401 - collected here
    test_a_silent_worker_is_lost_and_its_job_runs_again,
    test_cancel_stops_a_running_async_job_and_its_late_result_is_ignored,
    test_execution_timeout_ends_a_job_timed_out_and_stops_it,
    test_generator_chunks_arrive_through_stream,
    test_progress_shows_while_running_and_late_progress_is_ignored,
    test_refresh_worker_restarts_the_worker_after_its_result,
    test_webhook_gets_the_final_status_and_failures_are_reported,
    webhook_receiver,
)
from tests.integration.worker_loop.conftest import loop_worker_cmd

pytestmark = pytest.mark.emulator


def test_the_worker_runs_the_prompt_scaler_and_takes_job_after_job(slow_emulator) -> None:
    emu = slow_emulator
    with client_for(emu) as c:
        ids = [
            c.post("/run", json={"input": {"echo": i, "report_loop": True}}).json()["id"]
            for i in range(6)
        ]
        for i, job_id in enumerate(ids):
            info = emu.wait_job(job_id, timeout_s=60)
            assert info["status"] == "COMPLETED", info
            assert info["output"] == {"slept_s": 0, "echo": i, "scaler": "PromptJobScaler"}
            assert info["attempts"] == 1
    emu.wait_idle(30)
    # at concurrency 1 a worker is handed its next job only after its last one is done: per
    # worker, this test's assign and done events alternate (a "take" is a long poll, which may
    # come back empty, so it is not counted; the emulator is shared with other tests' jobs)
    ours = set(ids)
    per_worker: dict[str, list[str]] = {}
    for e in emu.events():
        if e["kind"] in ("assign", "done") and e.get("job") in ours:
            per_worker.setdefault(e["worker"], []).append(e["kind"])
    assert sum(kinds.count("done") for kinds in per_worker.values()) == len(ids)
    for kinds in per_worker.values():
        assert kinds == ["assign", "done"] * (len(kinds) // 2), kinds


def test_concurrency_modifier_batches_cancels_and_sigterm_drains(tmp_path) -> None:
    cmd = loop_worker_cmd("slow", "--concurrency", "3")
    with run_emulator(config(tmp_path, workers=1, cmd=cmd)) as emu, client_for(emu) as c:
        emu.wait_ready(60, polling=True)
        try:
            emu.faults.max_workers = 0  # queue all three, then let the worker take them at once
            ids = [c.post("/run", json={"input": {"sleep_s": 30}}).json()["id"] for _ in range(3)]
            emu.faults.max_workers = None
            emu.wait_health(lambda h: h["jobs"]["inProgress"] == 3, 30)
        finally:
            emu.faults.max_workers = None
        assert {emu.job(i)["worker_id"] for i in ids} == {"worker-0"}
        # one freed slot is refilled while the other two jobs keep running
        assert c.post(f"/cancel/{ids[0]}").json()["status"] == "CANCELLED"
        refill = c.post("/run", json={"input": {"sleep_s": 0, "echo": "refill"}}).json()["id"]
        info = emu.wait_job(refill, timeout_s=30)
        assert info["status"] == "COMPLETED" and info["worker_id"] == "worker-0"
        assert {emu.job(i)["status"] for i in ids[1:]} == {"IN_PROGRESS"}
        for i in ids[1:]:
            assert c.post(f"/cancel/{i}").json()["status"] == "CANCELLED"
        emu.wait_idle(30)
        last = {"sleep_s": 1.5, "echo": "last", "progress": "started"}
        job_id = c.post("/run", json={"input": last}).json()["id"]
        emu.wait_job(job_id, lambda j: j is not None and j["progress"] == "started")
    info = emu.job(job_id)  # read after exit: the worker got SIGTERM, its job still completed
    assert info["status"] == "COMPLETED" and info["output"] == {"slept_s": 1.5, "echo": "last"}
    assert emu.workers()[0]["last_exit"] == "exited with code 0"


def test_a_job_whose_take_was_in_flight_at_sigterm_still_runs(tmp_path) -> None:
    """The stock loop drops such a job (the queue re-runs it after the worker is gone); the
    prompt loop runs it, posts its result, then exits."""
    cfg = config(tmp_path, workers=1, cmd=loop_worker_cmd("slow"), take_long_poll_s=5)
    with run_emulator(cfg) as emu, client_for(emu) as c:
        emu.wait_ready(60, polling=True)  # its job-take is held open
        worker = emu.workers()[0]
        os.kill(worker["pid"], signal.SIGTERM)  # not through the emulator: the take stays held
        time.sleep(0.5)  # let the worker's loop see the signal before the job reaches the take
        job_id = c.post("/run", json={"input": {"echo": "in flight"}}).json()["id"]
        info = emu.wait_job(job_id, timeout_s=60)
        assert info["status"] == "COMPLETED" and info["output"]["echo"] == "in flight"
        assert info["attempts"] == 1 and info["retries"] == 0  # taken once, not re-queued

        def exited(workers: list[dict]) -> bool:
            return workers[0]["last_exit"] == "exited with code 0"

        emu.wait_workers(exited, 60)
